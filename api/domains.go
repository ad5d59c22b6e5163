package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/store"
)

const scopeDomains = apikey.ScopeDomains

// maxDomainName is the longest domain name in text form (RFC 1035 §2.3.4
// allows 255 octets on the wire: 253 characters without the root dot).
const maxDomainName = 253

// maxSelectorBase leaves room for the one-character algorithm suffix
// within a 63-octet DNS label (RFC 1035 §2.3.4).
const maxSelectorBase = 62

// verifyTimeout bounds all the DNS lookups of one verification.
const verifyTimeout = 15 * time.Second

func (s *Server) domainRoutes(g *echo.Group) {
	g.POST("/domains", s.createDomain, s.requireScope(scopeDomains))
	g.GET("/domains", s.listDomains, s.requireScope(scopeDomains))
	g.GET("/domains/:name", s.getDomain, s.requireScope(scopeDomains))
	g.DELETE("/domains/:name", s.deleteDomain, s.requireScope(scopeDomains))
	g.POST("/domains/:name/verify", s.verifyDomain, s.requireScope(scopeDomains))
	g.POST("/domains/:name/dkim/rotate", s.rotateDKIM, s.requireScope(scopeDomains))
	g.DELETE("/domains/:name/dkim/:selector", s.retireDKIM, s.requireScope(scopeDomains))
}

type domainRequest struct {
	Name string       `json:"name"`
	DKIM *dkimRequest `json:"dkim"`
}

type dkimRequest struct {
	Algorithms []string `json:"algorithms"`
	Selector   string   `json:"selector"`
}

// createDomain is POST /v1/domains: validate, generate the keys, seal
// them, store the domain, answer 201 with the records to publish.
func (s *Server) createDomain(c echo.Context) error {
	var req domainRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	d, invalid, err := s.registerDomain(c.Request().Context(), caller(c).ProjectID, req)
	switch {
	case errors.Is(err, store.ErrConflict):
		return newProblem(http.StatusConflict, "conflict", "Conflict", "the project already has the domain "+d.Name)
	case err != nil:
		return err
	case len(invalid) > 0:
		return validationProblem(fieldList(invalid))
	}
	return c.JSON(http.StatusCreated, s.toDomainView(d))
}

// CreateDomainNamed is registerDomain of name with the default keys, the
// console's form.
func (s *Server) CreateDomainNamed(ctx context.Context, projectID, name string) (store.Domain, map[string]string, error) {
	return s.registerDomain(ctx, projectID, domainRequest{Name: name})
}

// registerDomain is POST /v1/domains's operation (the console's too):
// validate, generate the keys, seal them, store the domain. invalid names
// each bad field (JSON Pointers into the request); store.ErrConflict when
// the project has the name (d.Name says which).
func (s *Server) registerDomain(ctx context.Context, projectID string, req domainRequest) (d store.Domain, invalid map[string]string, err error) {
	name, algs, base, ferrs := s.validateDomainRequest(req)
	if len(ferrs) > 0 {
		return store.Domain{}, fieldMap(ferrs), nil
	}
	keys, err := s.newDKIMKeys(name, base, algs)
	if err != nil {
		return store.Domain{}, nil, err
	}
	d, err = s.deps.Store.CreateDomain(ctx, store.Domain{
		ProjectID: projectID, Name: name, CreatedAt: s.cfg.Now(), Keys: keys})
	if err != nil {
		return store.Domain{Name: name}, nil, err
	}
	s.domainChanged(ctx, d.ProjectID, d.Name)
	return d, nil, nil
}

// validateDomainRequest returns the A-label name, the algorithms and the
// selector base, or the bad fields.
func (s *Server) validateDomainRequest(req domainRequest) (string, []string, string, []FieldError) {
	var ferrs []FieldError
	name, msg := domainName(req.Name)
	if msg != "" {
		ferrs = append(ferrs, FieldError{Field: "/name", Message: msg})
	}
	var opts dkimRequest
	if req.DKIM != nil {
		opts = *req.DKIM
	}
	algs := opts.Algorithms
	if len(algs) == 0 {
		algs = []string{dkimkey.RSA, dkimkey.Ed25519}
	}
	for i, a := range algs {
		if (a != dkimkey.RSA && a != dkimkey.Ed25519) || slices.Index(algs, a) != i {
			ferrs = append(ferrs, FieldError{Field: "/dkim/algorithms/" + strconv.Itoa(i),
				Message: "must be rsa or ed25519, each at most once"})
		}
	}
	base := strings.ToLower(opts.Selector)
	if base == "" {
		base = defaultSelector(s.cfg.Now())
	}
	if !isHostLabel(base) || len(base) > maxSelectorBase {
		ferrs = append(ferrs, FieldError{Field: "/dkim/selector",
			Message: "must be one DNS label of letters, digits and hyphens, at most 62 characters"})
	}
	return name, algs, base, ferrs
}

// domainName is the lower-case A-label form of a sender domain, or a
// problem message.
func domainName(raw string) (string, string) {
	name, msg := normalizeDomain(strings.TrimSuffix(strings.TrimSpace(raw), "."))
	if msg != "" {
		return "", "must be a domain name such as shop.example (" + msg + ")"
	}
	if len(name) > maxDomainName {
		return "", fmt.Sprintf("must be at most %d characters in A-label form", maxDomainName)
	}
	return name, ""
}

// defaultSelector is "mg" and the year and month, e.g. mg202611.
func defaultSelector(now time.Time) string { return "mg" + now.UTC().Format("200601") }

// selectorsFor names one key per algorithm: the base itself for a single
// algorithm; with both, the base suffixed "r" for RSA and "e" for Ed25519
// (mg202611r, mg202611e), so each key has its own DNS record.
func selectorsFor(base string, algs []string) []string {
	if len(algs) == 1 {
		return []string{base}
	}
	out := make([]string, len(algs))
	for i, a := range algs {
		out[i] = base + a[:1]
	}
	return out
}

// newDKIMKeys generates one key per algorithm and seals each private key
// with the master key, bound to the domain and selector.
func (s *Server) newDKIMKeys(name, base string, algs []string) ([]store.DKIMKey, error) {
	if s.deps.Keyring == nil {
		return nil, errors.New("no master keyring configured: cannot store DKIM keys")
	}
	sels := selectorsFor(base, algs)
	keys := make([]store.DKIMKey, len(algs))
	now := s.cfg.Now()
	for i, alg := range algs {
		signer, err := dkimkey.GenerateKey(alg)
		if err != nil {
			return nil, err
		}
		record, err := dkimkey.DNSRecordValue(signer.Public())
		if err != nil {
			return nil, err
		}
		pemKey, err := dkimkey.MarshalPrivateKey(signer)
		if err != nil {
			return nil, err
		}
		sealed, err := s.deps.Keyring.Seal(pemKey, dkimkey.SealAAD(name, sels[i]))
		if err != nil {
			return nil, fmt.Errorf("seal dkim key %s: %w", sels[i], err)
		}
		keys[i] = store.DKIMKey{Selector: sels[i], Algorithm: alg, PrivateKeySealed: sealed,
			PublicRecord: record, CreatedAt: now}
	}
	return keys, nil
}

// listDomains is GET /v1/domains, by name.
func (s *Server) listDomains(c echo.Context) error {
	list, err := s.deps.Store.ListDomains(c.Request().Context(), caller(c).ProjectID)
	if err != nil {
		return err
	}
	out := domainListView{Data: make([]domainView, len(list))}
	for i, d := range list {
		out.Data[i] = s.toDomainView(d)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getDomain(c echo.Context) error {
	d, err := s.pathDomain(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.toDomainView(d))
}

// pathDomain loads the {name} domain of the caller's project; a name that
// is not a domain, or another project's, is a 404.
func (s *Server) pathDomain(c echo.Context) (store.Domain, error) {
	name, ok := pathDomainName(c)
	if !ok {
		return store.Domain{}, notFoundProblem("domain")
	}
	d, err := s.deps.Store.GetDomain(c.Request().Context(), caller(c).ProjectID, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Domain{}, notFoundProblem("domain")
	}
	return d, err
}

// pathDomainName is the {name} path parameter in A-label form (a U-label
// name is accepted, percent-encoded).
func pathDomainName(c echo.Context) (string, bool) {
	raw := c.Param("name")
	if d, err := url.PathUnescape(raw); err == nil {
		raw = d
	}
	name, msg := domainName(raw)
	return name, msg == ""
}

func (s *Server) deleteDomain(c echo.Context) error {
	name, ok := pathDomainName(c)
	if !ok {
		return notFoundProblem("domain")
	}
	projectID := caller(c).ProjectID
	err := s.deps.Store.DeleteDomain(c.Request().Context(), projectID, name)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("domain")
	}
	if err != nil {
		return err
	}
	s.domainChanged(c.Request().Context(), projectID, name)
	return c.NoContent(http.StatusNoContent)
}

// verifyDomain is POST /v1/domains/{name}/verify: every record of
// dns_records looked up through the configured resolver and judged. The
// DKIM records decide the domain's status (recordCheck); the answer's
// verified says whether every record is right.
func (s *Server) verifyDomain(c echo.Context) error {
	d, err := s.pathDomain(c)
	if err != nil {
		return err
	}
	d, results, taken, err := s.VerifyDomain(c.Request().Context(), d)
	if err != nil {
		return err
	}
	if taken {
		return newProblem(http.StatusConflict, "domain-taken", "Domain verified elsewhere",
			"the name "+d.Name+" is verified by another project; it cannot be verified in this one")
	}
	out := verifyView{Name: d.Name, Status: d.Status, Verified: dnscheck.AllOK(results), Records: make([]checkView, len(results))}
	for i, r := range results {
		out.Records[i] = checkView{Type: r.Type, Name: r.Name, Value: r.Value, Status: r.Status, Found: r.Found, OK: r.OK}
		if r.Err != nil {
			out.Records[i].Error = r.Err.Error()
		}
	}
	return c.JSON(http.StatusOK, out)
}

// VerifyDomain is the verify operation (the API's and the console's):
// every record DNSRecords lists looked up and judged (each result found,
// missing or error), and what the DKIM results prove stored
// (recordCheck). It returns the domain as stored; taken is true when
// another project has verified the name (nothing stored then).
func (s *Server) VerifyDomain(ctx context.Context, d store.Domain) (store.Domain, []dnscheck.Result, bool, error) {
	lookup, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	results := dnscheck.Check(lookup, dnscheck.NewResolver(s.cfg.DNSServer), s.dnsRecords(d))
	d, taken, err := s.recordCheck(ctx, d, results)
	return d, results, taken, err
}

// DNSRecords are the records domain d should publish (dnsRecords).
func (s *Server) DNSRecords(d store.Domain) []dnscheck.Record { return s.dnsRecords(d) }

// recordCheck stores what the DKIM results prove about d and returns the
// domain as stored: a record found makes it verified, none (every lookup
// answered) turns a verified domain failed; a failed lookup changes
// nothing, as does a domain deleted or given other keys during the lookup
// (the answer then shows it as read). taken is true for a name another
// project has verified.
func (s *Server) recordCheck(ctx context.Context, d store.Domain, results []dnscheck.Result) (store.Domain, bool, error) {
	proof := dnscheck.DKIMProof(results)
	if proof == dnscheck.ProofUnknown {
		return d, false, nil
	}
	res, err := s.deps.Store.RecordDomainCheck(ctx, d, proof == dnscheck.ProofFound, checkedRecords(results))
	switch {
	case err != nil:
		return store.Domain{}, false, err
	case res.Stale: // deleted, or its keys changed, during the lookup: nothing recorded
		return d, false, nil
	case res.Taken:
		return d, true, nil
	}
	if res.Changed {
		s.domainChanged(ctx, d.ProjectID, d.Name)
	}
	return res.Domain, false, nil
}

// checkedRecords are the DKIM results among results, as a domain event
// reports them.
func checkedRecords(results []dnscheck.Result) []store.CheckedRecord {
	var out []store.CheckedRecord
	for _, r := range results {
		if r.Kind == dnscheck.KindDKIM {
			out = append(out, store.CheckedRecord{Name: r.Name, Status: r.Status, OK: r.OK})
		}
	}
	return out
}

// rotateDKIM is POST /v1/domains/{name}/dkim/rotate: new keys for the
// algorithms the domain signs with, under new selectors; the old keys keep
// signing until they are retired.
func (s *Server) rotateDKIM(c echo.Context) error {
	d, err := s.pathDomain(c)
	if err != nil {
		return err
	}
	d, err = s.RotateDKIM(c.Request().Context(), d)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("domain")
	}
	if errors.Is(err, store.ErrConflict) {
		return newProblem(http.StatusConflict, "conflict", "Conflict", "a concurrent rotation took the selector; retry")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.toDomainView(d))
}

// RotateDKIM is the rotate operation (the API's and the console's): new
// keys for the algorithms d signs with, under new selectors. It returns
// the domain as stored; store.ErrNotFound when it is gone,
// store.ErrConflict when a concurrent rotation took the selector.
func (s *Server) RotateDKIM(ctx context.Context, d store.Domain) (store.Domain, error) {
	algs := activeAlgorithms(d.Keys)
	base := s.rotationSelector(d.Keys, algs)
	keys, err := s.newDKIMKeys(d.Name, base, algs)
	if err != nil {
		return store.Domain{}, err
	}
	d, err = s.deps.Store.AddDKIMKeys(ctx, d.ProjectID, d.Name, keys)
	if err != nil {
		return store.Domain{}, err
	}
	s.domainChanged(ctx, d.ProjectID, d.Name)
	return d, nil
}

// activeAlgorithms are the algorithms of the active keys, RSA first; both
// when none is active.
func activeAlgorithms(keys []store.DKIMKey) []string {
	var out []string
	for _, alg := range []string{dkimkey.RSA, dkimkey.Ed25519} {
		for _, k := range keys {
			if k.RetiredAt == nil && k.Algorithm == alg {
				out = append(out, alg)
				break
			}
		}
	}
	if len(out) == 0 {
		return []string{dkimkey.RSA, dkimkey.Ed25519}
	}
	return out
}

// rotationSelector is the first selector base whose selectors the domain
// never used: mg<yyyymm>, then mg<yyyymmdd>, then mg<yyyymmdd>-2, -3, ….
func (s *Server) rotationSelector(keys []store.DKIMKey, algs []string) string {
	used := map[string]bool{}
	for _, k := range keys {
		used[k.Selector] = true
	}
	now := s.cfg.Now().UTC()
	day := "mg" + now.Format("20060102")
	for n := 0; ; n++ {
		base := defaultSelector(now)
		switch {
		case n == 1:
			base = day
		case n > 1:
			base = day + "-" + strconv.Itoa(n)
		}
		if !slices.ContainsFunc(selectorsFor(base, algs), func(sel string) bool { return used[sel] }) {
			return base
		}
	}
}

// retireDKIM is DELETE /v1/domains/{name}/dkim/{selector}: the key stops
// signing. The last active key of an algorithm cannot be retired (409):
// rotate first.
func (s *Server) retireDKIM(c echo.Context) error {
	name, ok := pathDomainName(c)
	if !ok {
		return notFoundProblem("domain")
	}
	err := s.RetireDKIM(c.Request().Context(), caller(c).ProjectID, name, c.Param("selector"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFoundProblem("active DKIM key")
	case errors.Is(err, store.ErrLastActiveKey):
		return newProblem(http.StatusConflict, "last-active-key", "Last active key",
			"this is the domain's only active key of its algorithm; rotate first, then retire it")
	case err != nil:
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// RetireDKIM is the retire operation (the API's and the console's): the
// key of selector stops signing. store.ErrNotFound for no such active
// key, store.ErrLastActiveKey for the last active key of its algorithm.
func (s *Server) RetireDKIM(ctx context.Context, projectID, name, selector string) error {
	if err := s.deps.Store.RetireDKIMKey(ctx, projectID, name, strings.ToLower(selector)); err != nil {
		return err
	}
	s.domainChanged(ctx, projectID, name)
	return nil
}

// The JSON shapes of the domain routes (openapi.yaml Domain, DomainList,
// DomainVerification).

type dkimKeyView struct {
	Selector  string  `json:"selector"`
	Algorithm string  `json:"algorithm"`
	CreatedAt string  `json:"created_at"`
	RetiredAt *string `json:"retired_at"`
}

type dnsRecordView struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

type domainView struct {
	Name string `json:"name"`
	// Status is pending, verified or failed.
	Status     string          `json:"status"`
	VerifiedAt *string         `json:"verified_at"`
	CheckedAt  *string         `json:"checked_at"`
	CreatedAt  string          `json:"created_at"`
	DKIM       []dkimKeyView   `json:"dkim"`
	DNSRecords []dnsRecordView `json:"dns_records"`
}

type domainListView struct {
	Data []domainView `json:"data"`
}

type checkView struct {
	Type   string   `json:"type"`
	Name   string   `json:"name"`
	Value  string   `json:"value"`
	Status string   `json:"status"`
	Found  []string `json:"found"`
	Error  string   `json:"error,omitempty"`
	OK     bool     `json:"ok"`
}

type verifyView struct {
	Name string `json:"name"`
	// Status is the domain's status after the check.
	Status   string      `json:"status"`
	Verified bool        `json:"verified"`
	Records  []checkView `json:"records"`
}

func (s *Server) toDomainView(d store.Domain) domainView {
	v := domainView{Name: d.Name, Status: d.Status, VerifiedAt: optTime(d.VerifiedAt), CheckedAt: optTime(d.CheckedAt),
		CreatedAt: timeString(d.CreatedAt),
		DKIM:      make([]dkimKeyView, len(d.Keys)), DNSRecords: []dnsRecordView{}}
	for i, k := range d.Keys {
		v.DKIM[i] = dkimKeyView{Selector: k.Selector, Algorithm: k.Algorithm,
			CreatedAt: timeString(k.CreatedAt), RetiredAt: optTime(k.RetiredAt)}
	}
	for _, r := range s.dnsRecords(d) {
		v.DNSRecords = append(v.DNSRecords, dnsRecordView{Type: r.Type, Name: r.Name, Value: r.Value})
	}
	return v
}

// dnsRecords are the records a domain should publish, in this order:
//   - a DKIM TXT record per active key at <selector>._domainkey.<name>
//     (retired keys' records may be removed once mail signed with them
//     is delivered);
//   - with relay hosts configured, an SPF hint at <name>:
//     "v=spf1 a:<relay host> … ~all" (ip4:/ip6: for a relay given as an
//     address): "a:" authorises the addresses of
//     the relay hosts themselves (RFC 7208 §5.3), which is right when the
//     relay is the sending MTA; a provider that publishes its own SPF
//     record is better included with "include:" (RFC 7208 §5.2), which
//     verification accepts too as long as the "a:" terms are present;
//   - a DMARC suggestion at _dmarc.<name>, monitoring only (p=none);
//   - with a return-path domain and relay hosts configured, where bounces
//     to b+TOKEN@<return-path domain> go (they must reach the mailbox
//     mailgate reads): the return-path domain's MX pointing at the first
//     relay host, or, when that relay is given as an address (an MX names
//     a host, never an address: RFC 2181 §10.3), the return-path domain's
//     own A or AAAA record with that address, which makes it its own mail
//     exchanger (RFC 5321 §5.1).
func (s *Server) dnsRecords(d store.Domain) []dnscheck.Record {
	var out []dnscheck.Record
	for _, k := range d.Keys {
		if k.RetiredAt == nil {
			out = append(out, dnscheck.DKIMRecord(k.Selector, d.Name, k.PublicRecord))
		}
	}
	hosts := s.relayHosts()
	if len(hosts) > 0 {
		spf := "v=spf1"
		for _, h := range hosts {
			spf += " " + spfMechanism(h)
		}
		out = append(out, dnscheck.Record{Kind: dnscheck.KindSPF, Type: "TXT", Name: d.Name, Value: spf + " ~all"})
	}
	out = append(out, dnscheck.Record{Kind: dnscheck.KindDMARC, Type: "TXT", Name: "_dmarc." + d.Name,
		Value: "v=DMARC1; p=none; rua=mailto:dmarc@" + d.Name})
	if rp := strings.ToLower(strings.TrimSuffix(s.cfg.ReturnPathDomain, ".")); rp != "" && len(hosts) > 0 {
		out = append(out, returnPathRecord(rp, hosts[0]))
	}
	return out
}

// returnPathRecord sends the return-path domain rp's mail to host: an MX
// for a host name, an A or AAAA record for an address.
func returnPathRecord(rp, host string) dnscheck.Record {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return dnscheck.Record{Kind: dnscheck.KindReturnPath, Type: "MX", Name: rp, Value: "10 " + host}
	case ip.To4() != nil:
		return dnscheck.Record{Kind: dnscheck.KindReturnPath, Type: "A", Name: rp, Value: ip.String()}
	}
	return dnscheck.Record{Kind: dnscheck.KindReturnPath, Type: "AAAA", Name: rp, Value: ip.String()}
}

// spfMechanism authorises one relay host: ip4:/ip6: for an address,
// a:<host> for a name (RFC 7208 §5.3, §5.6).
func spfMechanism(host string) string {
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "a:" + host
	case ip.To4() != nil:
		return "ip4:" + host
	}
	return "ip6:" + host
}

// relayHosts are the configured relay host names, lower case, without
// duplicates, in order.
func (s *Server) relayHosts() []string {
	var out []string
	for _, h := range s.cfg.RelayHosts {
		h = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}
