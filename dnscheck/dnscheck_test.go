package dnscheck_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/dnscheck/dnstest"
)

// longKey stands for an RSA key: long enough to need several TXT strings
// and, with the rest, more than 512 octets of answer.
var longKey = strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 12)

var expected = []dnscheck.Record{
	{Kind: dnscheck.KindDKIM, Type: "TXT", Name: "mg202611r._domainkey.shop.example", Value: "v=DKIM1; k=rsa; p=" + longKey},
	{Kind: dnscheck.KindDKIM, Type: "TXT", Name: "mg202611e._domainkey.shop.example", Value: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
	{Kind: dnscheck.KindSPF, Type: "TXT", Name: "shop.example", Value: "v=spf1 a:relay.example ~all"},
	{Kind: dnscheck.KindDMARC, Type: "TXT", Name: "_dmarc.shop.example", Value: "v=DMARC1; p=none; rua=mailto:dmarc@shop.example"},
	{Kind: dnscheck.KindReturnPath, Type: "MX", Name: "bounces.mailgate.example", Value: "10 relay.example"},
}

// publish serves every expected record, written the way people publish
// them: other spacing, extra tags, a stricter policy.
func publish(s *dnstest.Server) {
	s.AddTXT("mg202611r._domainkey.shop.example", "v=DKIM1;k=rsa; t=s; p="+longKey[:100]+" "+longKey[100:])
	s.AddTXT("mg202611e._domainkey.shop.example", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=;")
	s.AddTXT("shop.example", "google-site-verification=abc")
	s.AddTXT("shop.example", "v=spf1 include:_spf.google.com +a:Relay.Example -all")
	s.AddTXT("_dmarc.shop.example", "v=DMARC1; p=reject")
	s.AddMX("bounces.mailgate.example", 20, "Relay.Example.")
}

func oks(results []dnscheck.Result) map[string]bool {
	out := map[string]bool{}
	for _, r := range results {
		out[r.Name] = r.OK
	}
	return out
}

func statuses(results []dnscheck.Result) map[string]string {
	out := map[string]string{}
	for _, r := range results {
		out[r.Name] = r.Status
	}
	return out
}

func allStatus(status string) map[string]string {
	out := map[string]string{}
	for _, r := range expected {
		out[r.Name] = status
	}
	return out
}

func allOK(v bool) map[string]bool {
	out := map[string]bool{}
	for _, r := range expected {
		out[r.Name] = v
	}
	return out
}

func TestCheckPublished(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := dnstest.Start(t)
			s.TruncateUDP(network == "tcp")
			publish(s)
			res := dnscheck.Check(context.Background(), dnscheck.NewResolver(s.Addr), expected)
			if diff := cmp.Diff(allOK(true), oks(res)); diff != "" {
				t.Errorf("ok by name (-want +got):\n%s\n%+v", diff, res)
			}
			if !dnscheck.AllOK(res) {
				t.Error("AllOK = false")
			}
			if diff := cmp.Diff(allStatus(dnscheck.StatusFound), statuses(res)); diff != "" {
				t.Errorf("status by name (-want +got):\n%s", diff)
			}
			if got := res[4].Found; !cmp.Equal(got, []string{"20 relay.example"}) {
				t.Errorf("MX found %v", got)
			}
			if got := res[0].Found; len(got) != 1 || !strings.Contains(got[0], longKey[90:110]) {
				t.Errorf("DKIM found %v: want the TXT strings joined", got)
			}
			if s.Queries(network) == 0 {
				t.Errorf("no query over %s", network)
			}
		})
	}
}

func TestCheckNothingPublished(t *testing.T) {
	s := dnstest.Start(t)
	res := dnscheck.Check(context.Background(), dnscheck.NewResolver(s.Addr), expected)
	if diff := cmp.Diff(allOK(false), oks(res)); diff != "" {
		t.Errorf("ok by name (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(allStatus(dnscheck.StatusMissing), statuses(res)); diff != "" {
		t.Errorf("status by name (-want +got):\n%s", diff)
	}
	for _, r := range res {
		if r.Found == nil || len(r.Found) != 0 || r.Err != nil {
			t.Errorf("%s found %#v, error %v; want empty, no error", r.Name, r.Found, r.Err)
		}
	}
	if dnscheck.AllOK(res) || dnscheck.AllOK(nil) {
		t.Error("AllOK true without records")
	}
}

// TestCheckNoRecordOfTheType: a name that exists but holds no record of
// the type asked (NODATA) is missing, as a name that does not exist is.
func TestCheckNoRecordOfTheType(t *testing.T) {
	s := dnstest.Start(t)
	for _, r := range expected {
		s.AddIP(r.Name, net.ParseIP("192.0.2.1"))
	}
	res := dnscheck.Check(context.Background(), dnscheck.NewResolver(s.Addr), expected)
	if diff := cmp.Diff(allStatus(dnscheck.StatusMissing), statuses(res)); diff != "" {
		t.Errorf("status by name (-want +got):\n%s", diff)
	}
}

// TestCheckLookupFails: when DNS does not answer whether a record exists
// (the resolver down, SERVFAIL, REFUSED), every record is an error
// carrying the resolver's error, never missing: it may well be published.
func TestCheckLookupFails(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(s *dnstest.Server)
	}{
		{"resolver down", (*dnstest.Server).Stop},
		{"servfail", func(s *dnstest.Server) { s.Rcode(dns.RcodeServerFailure) }},
		{"refused", func(s *dnstest.Server) { s.Rcode(dns.RcodeRefused) }},
	}
	returnPathA := dnscheck.Record{Kind: dnscheck.KindReturnPath, Type: "A", Name: "bounces.shop.example", Value: "192.0.2.1"}
	records := append(append([]dnscheck.Record{}, expected...), returnPathA)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dnstest.Start(t)
			publish(s)
			s.AddIP(returnPathA.Name, net.ParseIP(returnPathA.Value))
			tt.spoil(s)
			res := dnscheck.Check(context.Background(), dnscheck.NewResolver(s.Addr), records)
			for _, r := range res {
				var dnsErr *net.DNSError
				if r.Status != dnscheck.StatusError || r.OK || len(r.Found) != 0 || !errors.As(r.Err, &dnsErr) {
					t.Errorf("%s %s: status %q ok %v found %v error %v; want an error from the resolver",
						r.Type, r.Name, r.Status, r.OK, r.Found, r.Err)
				}
			}
			if dnscheck.AllOK(res) {
				t.Error("AllOK with every lookup failed")
			}
		})
	}
}

func TestCheckWrongRecords(t *testing.T) {
	tests := []struct {
		name    string
		publish func(s *dnstest.Server)
		bad     string
	}{
		{"other dkim key", func(s *dnstest.Server) {
			s.AddTXT("mg202611e._domainkey.shop.example", "v=DKIM1; k=ed25519; p=AAAAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
		}, "mg202611e._domainkey.shop.example"},
		{"dkim algorithm differs", func(s *dnstest.Server) {
			s.AddTXT("mg202611e._domainkey.shop.example", "v=DKIM1; k=rsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
		}, "mg202611e._domainkey.shop.example"},
		{"spf without the relay", func(s *dnstest.Server) {
			s.AddTXT("shop.example", "v=spf1 mx ~all")
		}, "shop.example"},
		{"two spf records", func(s *dnstest.Server) {
			s.AddTXT("shop.example", "v=spf1 a:relay.example ~all")
			s.AddTXT("shop.example", "v=spf1 a:relay.example ~all")
		}, "shop.example"},
		{"no dmarc", func(s *dnstest.Server) {
			s.AddTXT("_dmarc.shop.example", "v=spf1 -all")
		}, "_dmarc.shop.example"},
		{"mx elsewhere", func(s *dnstest.Server) {
			s.AddMX("bounces.mailgate.example", 10, "mx.other.example")
		}, "bounces.mailgate.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dnstest.Start(t)
			publish(s)
			s.Clear(tt.bad)
			tt.publish(s)
			want := allOK(true)
			want[tt.bad] = false
			res := dnscheck.Check(context.Background(), dnscheck.NewResolver(s.Addr), expected)
			if diff := cmp.Diff(want, oks(res)); diff != "" {
				t.Errorf("ok by name (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDKIMProof: one matching DKIM record proves the domain whatever the
// others say; without one, a failed DKIM lookup leaves it unknown; other
// kinds of record never count.
func TestDKIMProof(t *testing.T) {
	dkim := func(status string, ok bool) dnscheck.Result {
		return dnscheck.Result{Record: dnscheck.DKIMRecord("s", "shop.example", "v=DKIM1; p=x"), Status: status, OK: ok}
	}
	spfOK := dnscheck.Result{Record: expected[2], Status: dnscheck.StatusFound, OK: true}
	spfErr := dnscheck.Result{Record: expected[2], Status: dnscheck.StatusError}
	for _, tc := range []struct {
		name    string
		results []dnscheck.Result
		want    string
	}{
		{"one of two found", []dnscheck.Result{dkim(dnscheck.StatusMissing, false), dkim(dnscheck.StatusFound, true)}, dnscheck.ProofFound},
		{"found beside an error", []dnscheck.Result{dkim(dnscheck.StatusError, false), dkim(dnscheck.StatusFound, true)}, dnscheck.ProofFound},
		{"all missing", []dnscheck.Result{dkim(dnscheck.StatusMissing, false), dkim(dnscheck.StatusMissing, false), spfOK}, dnscheck.ProofMissing},
		{"published but another key", []dnscheck.Result{dkim(dnscheck.StatusFound, false)}, dnscheck.ProofMissing},
		{"missing and an error", []dnscheck.Result{dkim(dnscheck.StatusMissing, false), dkim(dnscheck.StatusError, false)}, dnscheck.ProofUnknown},
		{"only SPF failed", []dnscheck.Result{dkim(dnscheck.StatusMissing, false), spfErr}, dnscheck.ProofMissing},
		{"no DKIM record", []dnscheck.Result{spfOK}, dnscheck.ProofMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dnscheck.DKIMProof(tc.results); got != tc.want {
				t.Errorf("DKIMProof = %q, want %q", got, tc.want)
			}
		})
	}
}
