package worker

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// domainCheckTimeout bounds the DNS lookups of one domain's re-check.
const domainCheckTimeout = 15 * time.Second

// Publisher broadcasts a change to the API replicas (queue.Revocations).
type Publisher interface {
	Publish(ctx context.Context, payload string) error
}

// recheckLoop re-checks due sender domains every DomainRecheckPoll until
// ctx is done; it returns at once when re-checking is off.
func (w *Worker) recheckLoop(ctx context.Context) {
	if w.cfg.DomainRecheckInterval <= 0 {
		return
	}
	t := time.NewTicker(w.cfg.DomainRecheckPoll)
	defer t.Stop()
	for {
		if _, err := w.RecheckDomainsOnce(ctx); err != nil && ctx.Err() == nil {
			w.deps.Log.Warn("domain re-check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RecheckDomainsOnce looks up again the DKIM records of every verified or
// failed sender domain not checked for DomainRecheckInterval (up to
// DomainRecheckBatch of them) and records what DNS says
// (store.RecordDomainCheck): a verified domain none of whose records is
// published any more becomes failed, a failed one whose record is back
// verified again, each with its event; a lookup that fails changes
// nothing and is logged. Each domain is claimed first (a conditional
// update of checked_at), so that of several workers one checks it. It
// returns how many domains this call checked.
func (w *Worker) RecheckDomainsOnce(ctx context.Context) (int, error) {
	if w.cfg.DomainRecheckInterval <= 0 {
		return 0, nil
	}
	before := w.cfg.Now().Add(-w.cfg.DomainRecheckInterval)
	ids, err := w.deps.Store.DomainsDue(ctx, before, w.cfg.DomainRecheckBatch)
	if err != nil {
		return 0, err
	}
	checked := 0
	for _, id := range ids {
		d, ok, err := w.deps.Store.ClaimDomainCheck(ctx, id, before)
		if err != nil {
			return checked, err
		}
		if ok {
			checked++
			w.recheckDomain(ctx, d)
		}
	}
	return checked, nil
}

// recheckDomain looks a claimed domain's DKIM records up and records the
// outcome; every failure is logged, none stops the pass.
func (w *Worker) recheckDomain(ctx context.Context, d store.Domain) {
	var records []dnscheck.Record
	for _, k := range d.Keys {
		if k.RetiredAt == nil {
			records = append(records, dnscheck.DKIMRecord(k.Selector, d.Name, k.PublicRecord))
		}
	}
	lctx, cancel := context.WithTimeout(ctx, domainCheckTimeout)
	results := dnscheck.Check(lctx, w.resolver, records)
	cancel()
	log := w.deps.Log.With("domain", d.Name, "project_id", d.ProjectID)
	proof := dnscheck.DKIMProof(results)
	if proof == dnscheck.ProofUnknown {
		log.Warn("domain re-check: a DKIM lookup failed; status left as it is", "status", d.Status,
			"err", firstError(results))
		return
	}
	res, err := w.deps.Store.RecordDomainCheck(ctx, d, proof == dnscheck.ProofFound, checkedRecords(results))
	switch {
	case err != nil:
		log.Warn("domain re-check: record the outcome", "err", err)
	case res.Stale:
		log.Info("domain re-check: the domain was deleted or its keys changed during the lookup; result dropped")
	case res.Taken:
		log.Info("domain re-check: DKIM record found, but another project has verified the name", "status", res.Domain.Status)
	case res.Changed:
		log.Warn("domain re-check: status changed", "from", d.Status, "to", res.Domain.Status)
		if w.deps.Publisher != nil {
			if err := w.deps.Publisher.Publish(ctx, queue.DomainChange(d.ProjectID, d.Name)); err != nil {
				log.Warn("broadcast domain change; the API replicas see it within their cache TTL", "err", err)
			}
		}
	}
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

// firstError is the first lookup error among results, or nil.
func firstError(results []dnscheck.Result) error {
	for _, r := range results {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// DomainStates is the part of store.Store the domain collector reads.
type DomainStates interface {
	VerifiedNames(ctx context.Context) (map[string]bool, error)
}

// mailgate_domain_verified: 1 when one project has the sender domain
// verified, 0 when it is registered but pending or failed everywhere.
// Label: domain (a registered sender domain name). Read from the store at
// scrape time rather than set by the re-check: the re-check runs in
// whichever worker claims a domain, verify runs in the API, and a
// restarted process knows nothing; the table knows it all, in one small
// grouped query per scrape.
var (
	domainVerifiedDesc = prometheus.NewDesc("mailgate_domain_verified",
		"1 if the sender domain is verified (in one project), 0 if it is registered but pending or failed.",
		[]string{"domain"}, nil)
	domainsUpDesc = newCollectorUpDesc("domains")
)

// DomainCollector reports mailgate_domain_verified at scrape time.
type DomainCollector struct {
	src     DomainStates
	timeout time.Duration
}

// NewDomainCollector returns the collector of mailgate_domain_verified,
// read from src (a *store.Store) at each scrape.
func NewDomainCollector(src DomainStates) *DomainCollector {
	return &DomainCollector{src: src, timeout: collectTimeout}
}

// Describe implements prometheus.Collector.
func (c *DomainCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- domainVerifiedDesc
	ch <- domainsUpDesc
}

// Collect implements prometheus.Collector. On a database error only
// mailgate_collector_up{collector="domains"} 0 is reported.
func (c *DomainCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	names, err := c.src.VerifiedNames(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(domainsUpDesc, prometheus.GaugeValue, 0)
		return
	}
	for name, verified := range names {
		v := 0.0
		if verified {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(domainVerifiedDesc, prometheus.GaugeValue, v, name)
	}
	ch <- prometheus.MustNewConstMetric(domainsUpDesc, prometheus.GaugeValue, 1)
}
