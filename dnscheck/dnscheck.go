// Package dnscheck owns the verification of a sender domain's DNS: it
// looks up the records mailgate asks a customer to publish (DKIM keys,
// an SPF hint, a DMARC policy, the return-path MX) and says, record by
// record, whether what is published does the job.
//
// It talks to DNS only through a Resolver, which callers inject: tests
// point it at a DNS server on loopback; NewResolver builds one for a
// configured server (MAILGATE_DNS_SERVER). It does not know where the
// expected records come from (package api builds them).
package dnscheck

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// Kinds of record, each with its own rule for "ok".
const (
	// KindDKIM: a DKIM key record (RFC 6376 §3.6.1) at
	// <selector>._domainkey.<domain>. OK when a TXT record carries every
	// tag of the expected value with the same value, whitespace ignored
	// (extra tags such as t=s are allowed).
	KindDKIM = "dkim"
	// KindSPF: an SPF hint (RFC 7208) at the domain. OK when exactly one
	// v=spf1 record exists (RFC 7208 §4.5: more is a permerror) and it
	// holds every mechanism of the expected value except its "all".
	KindSPF = "spf"
	// KindDMARC: a DMARC policy (RFC 7489 §6.1) at _dmarc.<domain>. OK
	// when any v=DMARC1 record exists, whatever its policy.
	KindDMARC = "dmarc"
	// KindReturnPath: where bounces to the return-path domain go: its MX
	// (OK when one published MX host, priority ignored, equals the
	// expected one), or, for a mail host known only by its address, its
	// A or AAAA record (RFC 5321 §5.1: a domain without MX is its own
	// mail exchanger; OK when one published address equals the expected
	// and the name publishes no MX).
	KindReturnPath = "return_path"
)

// Record is one record a domain should publish.
type Record struct {
	// Kind is one of the Kind constants; it picks the rule.
	Kind string
	// Type is the DNS type: "TXT", "MX", "A" or "AAAA".
	Type string
	// Name is fully qualified, without the trailing dot.
	Name string
	// Value is the whole expected value, unquoted: a TXT text, or
	// "<priority> <host>" for an MX, an address for A and AAAA.
	Value string
}

// What a lookup found, a Result's Status.
const (
	// StatusFound: DNS answered with records of the type at the name;
	// OK says whether they do the job.
	StatusFound = "found"
	// StatusMissing: DNS answered that the name does not exist or holds
	// no record of the type: the customer has something to publish.
	StatusMissing = "missing"
	// StatusError: the lookup failed (timeout, server unreachable,
	// SERVFAIL, REFUSED…), so nothing is known about the record.
	StatusError = "error"
)

// Result is what DNS holds for a Record.
type Result struct {
	Record
	// Status is one of the Status constants.
	Status string
	// Found are the values published at Name for Type (TXT strings of
	// one record concatenated; MX as "<priority> <host>"), none unless
	// Status is StatusFound.
	Found []string
	// Err is the resolver's error when Status is StatusError.
	Err error
	// OK says whether Found satisfies the Kind's rule.
	OK bool
}

// Resolver is the part of *net.Resolver this package uses.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIP(ctx context.Context, network, host string) ([]net.IP, error)
}

// DefaultTimeout bounds one DNS exchange of NewResolver's resolver.
const DefaultTimeout = 5 * time.Second

// NewResolver is a resolver asking server ("host:port") over UDP, and
// TCP for truncated answers, with Go's own stub resolver. An empty server
// is the system resolver.
func NewResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	d := net.Dialer{Timeout: DefaultTimeout}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		},
	}
}

// Check looks every record up and judges it. A record DNS says is not
// there is StatusMissing; a lookup that fails otherwise is StatusError,
// with the resolver's error: the record may well be published. Either
// leaves Found empty and OK false.
func Check(ctx context.Context, r Resolver, records []Record) []Result {
	out := make([]Result, len(records))
	for i, rec := range records {
		found, err := lookup(ctx, r, rec)
		res := Result{Record: rec, Status: StatusFound, Found: found}
		switch {
		case err != nil && !notFound(err):
			res.Status, res.Err, res.Found = StatusError, err, []string{}
		case len(found) == 0:
			res.Status, res.Found = StatusMissing, []string{}
		default:
			res.OK = judge(rec, found)
		}
		out[i] = res
	}
	return out
}

// notFound reports whether err is DNS's answer that the name does not
// exist (NXDOMAIN) or holds no record of the type asked (NODATA); Go's
// resolver reports both as a *net.DNSError with IsNotFound.
func notFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// AllOK reports whether every result is OK (and there is at least one).
func AllOK(results []Result) bool {
	for _, r := range results {
		if !r.OK {
			return false
		}
	}
	return len(results) > 0
}

// errType: a Record of a type this package does not look up.
var errType = errors.New("unsupported record type")

func lookup(ctx context.Context, r Resolver, rec Record) ([]string, error) {
	fqdn := strings.TrimSuffix(rec.Name, ".") + "." // rooted: no search list
	switch rec.Type {
	case "TXT":
		// Go joins the strings of one TXT record (RFC 7208 §3.3 asks SPF
		// readers to do the same; DKIM likewise, RFC 6376 §3.6.2.2).
		return r.LookupTXT(ctx, fqdn)
	case "MX":
		mxs, err := r.LookupMX(ctx, fqdn)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(mxs))
		for i, mx := range mxs {
			out[i] = strconv.Itoa(int(mx.Pref)) + " " + hostName(mx.Host)
		}
		return out, nil
	case "A", "AAAA":
		// The address makes the name its own mail exchanger only while it
		// publishes no MX (RFC 5321 §5.1): an MX found is reported and
		// fails the check; a failed MX lookup leaves the answer unknown.
		mxs, err := r.LookupMX(ctx, fqdn)
		if err != nil && !notFound(err) {
			return nil, err
		}
		if len(mxs) > 0 {
			out := make([]string, len(mxs))
			for i, mx := range mxs {
				out[i] = "MX " + strconv.Itoa(int(mx.Pref)) + " " + hostName(mx.Host)
			}
			return out, nil
		}
		network := "ip4"
		if rec.Type == "AAAA" {
			network = "ip6"
		}
		ips, err := r.LookupIP(ctx, network, fqdn)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(ips))
		for i, ip := range ips {
			out[i] = ip.String()
		}
		return out, nil
	}
	return nil, errType
}

func judge(rec Record, found []string) bool {
	switch rec.Kind {
	case KindDKIM:
		return anyMatch(found, func(f string) bool { return dkimMatches(rec.Value, f) })
	case KindSPF:
		return spfMatches(rec.Value, found)
	case KindDMARC:
		return anyMatch(found, func(f string) bool { return hasVersion(f, "v=DMARC1") })
	case KindReturnPath:
		if rec.Type == "A" || rec.Type == "AAAA" {
			want := net.ParseIP(rec.Value)
			return anyMatch(found, func(f string) bool { return want != nil && want.Equal(net.ParseIP(f)) })
		}
		want := hostName(lastField(rec.Value))
		return anyMatch(found, func(f string) bool { return hostName(lastField(f)) == want })
	}
	return false
}

func anyMatch(found []string, ok func(string) bool) bool {
	for _, f := range found {
		if ok(f) {
			return true
		}
	}
	return false
}

// hostName is a host name compared: lower case, without the root dot.
func hostName(h string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), ".")) }

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// DKIMRecord is the record of one DKIM key: its TXT value at
// <selector>._domainkey.<domain> (RFC 6376 §3.6.2.1).
func DKIMRecord(selector, domain, value string) Record {
	return Record{Kind: KindDKIM, Type: "TXT", Name: selector + "._domainkey." + domain, Value: value}
}

// What the DKIM results of a check prove about a domain (DKIMProof).
const (
	// ProofFound: a DKIM record of one of the domain's keys is published
	// and matches the key. Publishing it proves control of the domain.
	ProofFound = "found"
	// ProofMissing: every DKIM lookup was answered and none found a
	// matching record.
	ProofMissing = "missing"
	// ProofUnknown: no matching record was found and at least one lookup
	// failed, so one may be published: nothing is proved either way.
	ProofUnknown = "unknown"
)

// DKIMProof judges the KindDKIM results among results: ProofFound when
// one is OK, else ProofUnknown when one is StatusError, else ProofMissing
// (no DKIM record asked for included).
func DKIMProof(results []Result) string {
	unknown := false
	for _, r := range results {
		if r.Kind != KindDKIM {
			continue
		}
		if r.OK {
			return ProofFound
		}
		unknown = unknown || r.Status == StatusError
	}
	if unknown {
		return ProofUnknown
	}
	return ProofMissing
}
