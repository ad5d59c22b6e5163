package api

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/dnscheck/dnstest"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/store"
)

// The wire shapes of the domain routes, written from openapi.yaml.

type wireDKIMKey struct {
	Selector  string  `json:"selector"`
	Algorithm string  `json:"algorithm"`
	CreatedAt string  `json:"created_at"`
	RetiredAt *string `json:"retired_at"`
}

type wireDNSRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

type wireDomain struct {
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	VerifiedAt *string         `json:"verified_at"`
	CheckedAt  *string         `json:"checked_at"`
	CreatedAt  string          `json:"created_at"`
	DKIM       []wireDKIMKey   `json:"dkim"`
	DNSRecords []wireDNSRecord `json:"dns_records"`
}

type wireCheck struct {
	Type   string   `json:"type"`
	Name   string   `json:"name"`
	Value  string   `json:"value"`
	Status string   `json:"status"`
	Found  []string `json:"found"`
	Error  string   `json:"error"`
	OK     bool     `json:"ok"`
}

type wireVerification struct {
	Name     string      `json:"name"`
	Status   string      `json:"status"`
	Verified bool        `json:"verified"`
	Records  []wireCheck `json:"records"`
}

// domainEnv is a test server with a keyring, a relay host, a return-path
// domain and a DNS server on loopback; domains is a key with the domains
// scope in the default project.
type domainEnv struct {
	*testEnv
	kr      *keyring.Keyring
	dns     *dnstest.Server
	domains string
}

func newDomainEnv(t *testing.T, engine string) *domainEnv {
	t.Helper()
	return newDomainEnvRelays(t, engine, "Relay.Example", "relay.example")
}

// newDomainEnvRelays is newDomainEnv with the given relay hosts.
func newDomainEnvRelays(t *testing.T, engine string, relayHosts ...string) *domainEnv {
	t.Helper()
	return newDomainEnvWith(t, engine, relayHosts)
}

// newDomainEnvWith is newDomainEnvRelays with options applied after the
// domain settings.
func newDomainEnvWith(t *testing.T, engine string, relayHosts []string, opts ...envOption) *domainEnv {
	t.Helper()
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	e := newEnv(t, engine, append([]envOption{func(c *Config, d *Deps) {
		d.Keyring = kr
		c.DNSServer = dns.Addr
		c.RelayHosts = relayHosts
		c.ReturnPathDomain = "bounces.mailgate.example"
	}}, opts...)...)
	return &domainEnv{testEnv: e, kr: kr, dns: dns, domains: e.key(store.DefaultProjectID, apikey.ScopeDomains)}
}

func (e *domainEnv) createDomain(t *testing.T, body any) wireDomain {
	t.Helper()
	r := e.post(t, "/v1/domains", e.domains, body)
	wantCode(t, r, http.StatusCreated)
	var d wireDomain
	r.decode(t, &d)
	return d
}

func (e *domainEnv) del(t *testing.T, path, token string) response {
	t.Helper()
	return e.do(t, request{Method: http.MethodDelete, Path: path, Token: token})
}

func TestCreateDomain(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newDomainEnv(t, engine)
		d := e.createDomain(t, map[string]any{"name": "Shop.Example."})
		sel := "mg" + e.clock.Now().UTC().Format("200601")
		wantKeys := []wireDKIMKey{
			{Selector: sel + "e", Algorithm: "ed25519", CreatedAt: timeString(e.clock.Now())},
			{Selector: sel + "r", Algorithm: "rsa", CreatedAt: timeString(e.clock.Now())},
		}
		if diff := cmp.Diff(wantKeys, d.DKIM); diff != "" {
			t.Errorf("dkim (-want +got):\n%s", diff)
		}
		if d.Name != "shop.example" {
			t.Errorf("name %q", d.Name)
		}
		checkRecords(t, d, []wireDNSRecord{
			{"TXT", sel + "e._domainkey.shop.example", "v=DKIM1; k=ed25519; p="},
			{"TXT", sel + "r._domainkey.shop.example", "v=DKIM1; k=rsa; p="},
			{"TXT", "shop.example", "v=spf1 a:relay.example ~all"},
			{"TXT", "_dmarc.shop.example", "v=DMARC1; p=none; rua=mailto:dmarc@shop.example"},
			{"MX", "bounces.mailgate.example", "10 relay.example"},
		})
		e.checkSealedKeys(t, "shop.example", d)

		wantProblem(t, e.post(t, "/v1/domains", e.domains, map[string]any{"name": "shop.example"}),
			http.StatusConflict, "conflict")
		idn := e.createDomain(t, map[string]any{"name": "Bücher.example",
			"dkim": map[string]any{"algorithms": []string{"ed25519"}, "selector": "S1"}})
		if idn.Name != "xn--bcher-kva.example" || len(idn.DKIM) != 1 || idn.DKIM[0].Selector != "s1" {
			t.Errorf("IDN domain = %+v", idn)
		}
	})
}

// checkRecords compares dns_records, DKIM values by prefix (the key).
func checkRecords(t *testing.T, d wireDomain, want []wireDNSRecord) {
	t.Helper()
	got := make([]wireDNSRecord, len(d.DNSRecords))
	for i, r := range d.DNSRecords {
		got[i] = r
		if i < len(want) && strings.HasSuffix(want[i].Value, "p=") && strings.HasPrefix(r.Value, want[i].Value) {
			got[i].Value = want[i].Value
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dns_records (-want +got):\n%s", diff)
	}
}

// checkSealedKeys opens every stored private key with the keyring and
// checks it matches the published record.
func (e *domainEnv) checkSealedKeys(t *testing.T, name string, d wireDomain) {
	t.Helper()
	stored, err := e.store.GetDomain(context.Background(), store.DefaultProjectID, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range stored.Keys {
		if !strings.HasPrefix(string(k.PrivateKeySealed), "v1:"+e.kr.KeyID()+":") {
			t.Errorf("%s: private key not sealed: %.20q", k.Selector, k.PrivateKeySealed)
		}
		if _, err := e.kr.Open(k.PrivateKeySealed, dkimkey.SealAAD("other.example", k.Selector)); err == nil {
			t.Errorf("%s: sealed key opens for another domain", k.Selector)
		}
		pemKey, err := e.kr.Open(k.PrivateKeySealed, dkimkey.SealAAD(name, k.Selector))
		if err != nil {
			t.Fatalf("%s: open: %v", k.Selector, err)
		}
		signer, err := dkimkey.ParsePrivateKey(pemKey)
		if err != nil {
			t.Fatalf("%s: parse: %v", k.Selector, err)
		}
		record, _ := dkimkey.DNSRecordValue(signer.Public())
		if record != k.PublicRecord || !hasRecord(d, k.Selector+"._domainkey."+name, record) {
			t.Errorf("%s: private key does not match the published record", k.Selector)
		}
		if !publicKeyTypeMatches(signer.Public(), k.Algorithm) {
			t.Errorf("%s: key type %T for algorithm %s", k.Selector, signer.Public(), k.Algorithm)
		}
	}
}

func publicKeyTypeMatches(pub crypto.PublicKey, alg string) bool {
	switch pub.(type) {
	case *rsa.PublicKey:
		return alg == "rsa"
	case ed25519.PublicKey:
		return alg == "ed25519"
	}
	return false
}

func hasRecord(d wireDomain, name, value string) bool {
	for _, r := range d.DNSRecords {
		if r.Name == name && r.Value == value {
			return true
		}
	}
	return false
}

func TestCreateDomainInvalid(t *testing.T) {
	e := newDomainEnv(t, store.DialectSQLite)
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"not a domain", map[string]any{"name": "not a domain"}, "/name"},
		{"single label", map[string]any{"name": "localhost"}, "/name"},
		{"ip address", map[string]any{"name": "192.0.2.1"}, "/name"},
		{"label too long", map[string]any{"name": strings.Repeat("a", 64) + ".example"}, "/name"},
		{"unknown algorithm", map[string]any{"name": "shop.example", "dkim": map[string]any{"algorithms": []string{"dsa"}}}, "/dkim/algorithms/0"},
		{"bad selector", map[string]any{"name": "shop.example", "dkim": map[string]any{"selector": "a.b"}}, "/dkim/selector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, e.post(t, "/v1/domains", e.domains, tt.body), http.StatusUnprocessableEntity, "validation", tt.field)
		})
	}
	wantProblem(t, e.post(t, "/v1/domains", e.sender, map[string]any{"name": "shop.example"}), http.StatusForbidden, "forbidden")
}

func TestReadAndDeleteDomains(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newDomainEnv(t, engine)
		ed := map[string]any{"algorithms": []string{"ed25519"}}
		shop := e.createDomain(t, map[string]any{"name": "shop.example", "dkim": ed})
		alpha := e.createDomain(t, map[string]any{"name": "alpha.example", "dkim": ed})
		var list struct {
			Data []wireDomain `json:"data"`
		}
		r := e.get(t, "/v1/domains", e.domains)
		wantCode(t, r, http.StatusOK)
		r.decode(t, &list)
		if diff := cmp.Diff([]wireDomain{alpha, shop}, list.Data); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
		var got wireDomain
		r = e.get(t, "/v1/domains/SHOP.example", e.domains)
		wantCode(t, r, http.StatusOK)
		r.decode(t, &got)
		if diff := cmp.Diff(shop, got); diff != "" {
			t.Errorf("get (-want +got):\n%s", diff)
		}

		other := e.key(e.project("other"), apikey.ScopeDomains)
		wantProblem(t, e.get(t, "/v1/domains/shop.example", other), http.StatusNotFound, "not-found")
		wantProblem(t, e.del(t, "/v1/domains/shop.example", other), http.StatusNotFound, "not-found")
		r = e.get(t, "/v1/domains", other)
		r.decode(t, &list)
		if len(list.Data) != 0 {
			t.Errorf("other project lists %d domains", len(list.Data))
		}

		wantCode(t, e.del(t, "/v1/domains/shop.example", e.domains), http.StatusNoContent)
		wantProblem(t, e.get(t, "/v1/domains/shop.example", e.domains), http.StatusNotFound, "not-found")
		wantProblem(t, e.del(t, "/v1/domains/shop.example", e.domains), http.StatusNotFound, "not-found")
	})
}

func TestVerifyDomain(t *testing.T) {
	e := newDomainEnv(t, store.DialectSQLite)
	d := e.createDomain(t, map[string]any{"name": "shop.example"})
	verify := func(t *testing.T) wireVerification {
		t.Helper()
		r := e.post(t, "/v1/domains/shop.example/verify", e.domains, nil)
		wantCode(t, r, http.StatusOK)
		var v wireVerification
		r.decode(t, &v)
		return v
	}
	t.Run("nothing published", func(t *testing.T) {
		v := verify(t)
		if v.Verified || len(v.Records) != len(d.DNSRecords) {
			t.Fatalf("verification %+v", v)
		}
		for _, c := range v.Records {
			if c.OK || len(c.Found) != 0 || c.Status != "missing" || c.Error != "" {
				t.Errorf("%s %s: ok=%v status=%q found=%v error=%q; want missing", c.Type, c.Name, c.OK, c.Status, c.Found, c.Error)
			}
		}
	})
	for _, r := range d.DNSRecords {
		publish(e.dns, r)
	}
	t.Run("all published", func(t *testing.T) {
		v := verify(t)
		if !v.Verified {
			t.Errorf("not verified: %+v", v)
		}
		want := make([]wireCheck, len(d.DNSRecords))
		for i, r := range d.DNSRecords {
			found := r.Value
			if r.Type == "MX" {
				found = "10 relay.example"
			}
			want[i] = wireCheck{Type: r.Type, Name: r.Name, Value: r.Value, Status: "found", Found: []string{found}, OK: true}
		}
		if diff := cmp.Diff(want, v.Records); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
	t.Run("one dkim key wrong", func(t *testing.T) {
		wrong := d.DNSRecords[1]
		e.dns.Clear(wrong.Name)
		e.dns.AddTXT(wrong.Name, strings.Replace(wrong.Value, "p=MII", "p=MIJ", 1))
		v := verify(t)
		if v.Verified {
			t.Error("verified with a wrong DKIM record")
		}
		for _, c := range v.Records {
			if c.OK != (c.Name != wrong.Name) || c.Status != "found" {
				t.Errorf("%s ok=%v status=%q; want found", c.Name, c.OK, c.Status)
			}
		}
	})
	// A resolver that does not answer says nothing about the records:
	// each is an error with the resolver's error, not missing.
	t.Run("resolver down", func(t *testing.T) {
		e.dns.Stop()
		v := verify(t)
		if v.Verified || len(v.Records) != len(d.DNSRecords) {
			t.Fatalf("verification %+v", v)
		}
		for _, c := range v.Records {
			if c.OK || len(c.Found) != 0 || c.Status != "error" || !strings.Contains(c.Error, c.Name) {
				t.Errorf("%s %s: ok=%v status=%q found=%v error=%q; want error naming the record", c.Type, c.Name, c.OK, c.Status, c.Found, c.Error)
			}
		}
	})
	wantProblem(t, e.post(t, "/v1/domains/nope.example/verify", e.domains, nil), http.StatusNotFound, "not-found")
}

func publish(s *dnstest.Server, r wireDNSRecord) {
	switch r.Type {
	case "A", "AAAA":
		s.AddIP(r.Name, net.ParseIP(r.Value))
	case "TXT":
		s.AddTXT(r.Name, r.Value)
	case "MX":
		pref, host, _ := strings.Cut(r.Value, " ")
		n, _ := strconv.Atoi(pref)
		s.AddMX(r.Name, uint16(n), host)
	}
}

func TestRotateAndRetireDKIM(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newDomainEnv(t, engine)
		e.createDomain(t, map[string]any{"name": "shop.example", "dkim": map[string]any{"selector": "old"}})
		rotate := func(t *testing.T) wireDomain {
			t.Helper()
			r := e.post(t, "/v1/domains/shop.example/dkim/rotate", e.domains, nil)
			wantCode(t, r, http.StatusOK)
			var d wireDomain
			r.decode(t, &d)
			return d
		}
		month := "mg" + e.clock.Now().UTC().Format("200601")
		day := "mg" + e.clock.Now().UTC().Format("20060102")
		d := rotate(t)
		if diff := cmp.Diff([]string{month + "e", month + "r", "olde", "oldr"}, keySelectors(d, false)); diff != "" {
			t.Errorf("active selectors after rotation (-want +got):\n%s", diff)
		}
		if n := len(d.DNSRecords); n != 7 {
			t.Errorf("%d dns_records, want 4 DKIM + SPF + DMARC + MX", n)
		}
		e.checkSealedKeys(t, "shop.example", d)
		d = rotate(t)
		if got := keySelectors(d, false); !cmp.Equal(got, []string{day + "e", day + "r", month + "e", month + "r", "olde", "oldr"}) {
			t.Errorf("second rotation: %v", got)
		}

		for _, sel := range []string{"oldr", "olde", month + "r"} {
			wantCode(t, e.del(t, "/v1/domains/shop.example/dkim/"+sel, e.domains), http.StatusNoContent)
		}
		wantProblem(t, e.del(t, "/v1/domains/shop.example/dkim/oldr", e.domains), http.StatusNotFound, "not-found")
		wantProblem(t, e.del(t, "/v1/domains/shop.example/dkim/"+day+"r", e.domains), http.StatusConflict, "last-active-key")
		wantProblem(t, e.del(t, "/v1/domains/nope.example/dkim/oldr", e.domains), http.StatusNotFound, "not-found")
		r := e.get(t, "/v1/domains/shop.example", e.domains)
		r.decode(t, &d)
		if got := keySelectors(d, true); !cmp.Equal(got, []string{month + "r", "olde", "oldr"}) {
			t.Errorf("retired selectors %v", got)
		}
		sd, err := e.store.SigningKeys(context.Background(), store.DefaultProjectID, "shop.example")
		keys, registered := sd.Keys, sd.Registered
		if err != nil || !registered || len(keys) != 3 {
			t.Errorf("signing keys: %d, registered %v, %v; want 3 of a registered domain", len(keys), registered, err)
		}
	})
}

// keySelectors lists the selectors of the retired or active keys, sorted.
func keySelectors(d wireDomain, retired bool) []string {
	out := []string{}
	for _, k := range d.DKIM {
		if (k.RetiredAt != nil) == retired {
			out = append(out, k.Selector)
		}
	}
	slices.Sort(out)
	return out
}

func TestSendNeedsRegisteredDomain(t *testing.T) {
	e := newDomainEnv(t, store.DialectSQLite)
	other := e.project("other")
	otherDomains := e.key(other, apikey.ScopeDomains)
	wantCode(t, e.post(t, "/v1/domains", otherDomains, map[string]any{"name": "theirs.example"}), http.StatusCreated)
	e.createDomain(t, map[string]any{"name": "brand.example", "dkim": map[string]any{"algorithms": []string{"ed25519"}}})

	e.send(t, e.sender, with(message(), "from", "Brand <news@Brand.Example>"))
	e.send(t, e.sender, message()) // shop.example: allowed without registration
	for _, from := range []string{"news@unknown.example", "news@theirs.example"} {
		wantProblem(t, e.post(t, "/v1/messages", e.sender, with(message(), "from", from)),
			http.StatusUnprocessableEntity, "validation", "/from")
	}
	wantCode(t, e.del(t, "/v1/domains/brand.example", e.domains), http.StatusNoContent)
	wantProblem(t, e.post(t, "/v1/messages", e.sender, with(message(), "from", "news@brand.example")),
		http.StatusUnprocessableEntity, "validation", "/from")
}

// TestCachedDomainDeletedOnEveryReplica: with caching on, a sender domain
// deleted through one replica is refused there at once and by another
// replica on its next requests, and a domain added is usable on every
// replica at once (only "may send" is cached).
func TestCachedDomainDeletedOnEveryReplica(t *testing.T) {
	a := newDomainEnv(t, store.DialectSQLite)
	cacheWithBroadcast(a.testEnv)
	replicaB := startReplica(t, a.testEnv, Config{})
	fromBrand := with(message(), "from", "Brand <news@brand.example>")
	replicas := []*testEnv{a.testEnv, replicaB}

	a.createDomain(t, map[string]any{"name": "brand.example", "dkim": map[string]any{"algorithms": []string{"ed25519"}}})
	for _, e := range replicas { // both replicas cache the domain
		wantCode(t, e.post(t, "/v1/messages", a.sender, fromBrand), http.StatusAccepted)
	}
	wantCode(t, a.del(t, "/v1/domains/brand.example", a.domains), http.StatusNoContent)
	wantProblem(t, a.post(t, "/v1/messages", a.sender, fromBrand), http.StatusUnprocessableEntity, "validation", "/from")
	deadline := time.Now().Add(5 * time.Second)
	for replicaB.post(t, "/v1/messages", a.sender, fromBrand).Code != http.StatusUnprocessableEntity { // the broadcast is asynchronous
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts mail from a domain deleted through replica A")
		}
		runtime.Gosched()
	}
	a.createDomain(t, map[string]any{"name": "brand.example", "dkim": map[string]any{"algorithms": []string{"ed25519"}}})
	for _, e := range replicas {
		wantCode(t, e.post(t, "/v1/messages", a.sender, fromBrand), http.StatusAccepted)
	}
}

// TestDomainRecordsForRelayAddresses: relays given as addresses get
// ip4:/ip6: SPF terms, and the return-path domain, which an MX cannot
// point at an address for, gets an A (or AAAA) record of its own: it is
// then its own mail exchanger (RFC 5321 §5.1). Verification checks it.
func TestDomainRecordsForRelayAddresses(t *testing.T) {
	for _, tt := range []struct {
		relay, spf, rpType string
	}{
		{"127.0.0.1", "v=spf1 ip4:127.0.0.1 ip6:::1 ~all", "A"},
		{"::1", "v=spf1 ip6:::1 ip4:127.0.0.1 ~all", "AAAA"},
	} {
		t.Run(tt.relay, func(t *testing.T) {
			other := "::1"
			if tt.relay == "::1" {
				other = "127.0.0.1"
			}
			e := newDomainEnvRelays(t, store.DialectSQLite, tt.relay, other)
			d := e.createDomain(t, map[string]any{"name": "shop.example"})
			recs := map[string]wireDNSRecord{}
			for _, r := range d.DNSRecords {
				recs[r.Type+" "+r.Name] = r
			}
			if spf := recs["TXT shop.example"].Value; spf != tt.spf {
				t.Errorf("SPF hint %q, want %q", spf, tt.spf)
			}
			want := wireDNSRecord{Type: tt.rpType, Name: "bounces.mailgate.example", Value: tt.relay}
			if got := recs[tt.rpType+" bounces.mailgate.example"]; got != want {
				t.Fatalf("return-path record %+v, want %+v (records %+v)", got, want, d.DNSRecords)
			}
			verified := func() (bool, bool) {
				r := e.post(t, "/v1/domains/shop.example/verify", e.domains, nil)
				wantCode(t, r, http.StatusOK)
				var v wireVerification
				r.decode(t, &v)
				for _, c := range v.Records {
					if c.Type == tt.rpType {
						return v.Verified, c.OK
					}
				}
				t.Fatalf("verification without the return-path record: %+v", v)
				return false, false
			}
			for _, r := range d.DNSRecords {
				if r.Type != tt.rpType {
					publish(e.dns, r)
				}
			}
			e.dns.AddIP(want.Name, net.ParseIP("192.0.2.7")) // elsewhere
			if all, ok := verified(); all || ok {
				t.Fatalf("verified %v, return path ok %v with its address elsewhere", all, ok)
			}
			publish(e.dns, want)
			if all, ok := verified(); !all || !ok {
				t.Fatalf("verified %v, return path ok %v once published", all, ok)
			}
			e.dns.AddMX(want.Name, 10, "mx.elsewhere.example") // then the address is not where mail goes
			if all, ok := verified(); all || ok {
				t.Fatalf("verified %v, return path ok %v with an MX elsewhere", all, ok)
			}
		})
	}
}
