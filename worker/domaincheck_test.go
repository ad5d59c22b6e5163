package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/dnscheck/dnstest"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recordingPublisher remembers what a worker broadcast.
type recordingPublisher struct {
	mu   sync.Mutex
	sent []string
}

func (p *recordingPublisher) Publish(_ context.Context, payload string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, payload)
	return nil
}

func (p *recordingPublisher) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.sent
	p.sent = nil
	return out
}

// recheckEnv is a migrated store on a fake clock and a DNS server on
// loopback publishing the DKIM records of the verified domains it made.
type recheckEnv struct {
	st    *store.Store
	clock *testClock
	dns   *dnstest.Server
	pub   *recordingPublisher
}

const recheckInterval = 24 * time.Hour

func newRecheckEnv(t *testing.T, url string) *recheckEnv {
	t.Helper()
	ctx := context.Background()
	clk := &testClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	st, err := store.Open(ctx, store.Config{URL: url, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	return &recheckEnv{st: st, clock: clk, dns: dnstest.Start(t), pub: &recordingPublisher{}}
}

// worker is a worker re-checking every recheckInterval through the DNS
// server.
func (e *recheckEnv) worker() *Worker {
	return New(Config{Now: e.clock.Now, DomainRecheckInterval: recheckInterval},
		Deps{Store: e.st, Resolver: dnscheck.NewResolver(e.dns.Addr), Publisher: e.pub})
}

// dkimName is the DKIM record name of a domain made by verified.
func dkimName(domain string) string { return "s1._domainkey." + domain }

func dkimValue(domain string) string { return "v=DKIM1; k=ed25519; p=" + domain }

// verified registers domain in the default project with one key, publishes
// its record and records a check that found it.
func (e *recheckEnv) verified(t *testing.T, domain string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.st.CreateDomain(ctx, store.Domain{ProjectID: store.DefaultProjectID, Name: domain,
		Keys: []store.DKIMKey{{Selector: "s1", Algorithm: "ed25519", PrivateKeySealed: []byte("sealed"),
			PublicRecord: dkimValue(domain)}}}); err != nil {
		t.Fatal(err)
	}
	e.dns.AddTXT(dkimName(domain), dkimValue(domain))
	d, err := e.st.GetDomain(ctx, store.DefaultProjectID, domain)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.st.RecordDomainCheck(ctx, d, true, nil); err != nil || !res.Changed {
		t.Fatalf("verify %s: %+v, %v", domain, res, err)
	}
}

// statuses maps the default project's domains to their statuses.
func (e *recheckEnv) statuses(t *testing.T) map[string]string {
	t.Helper()
	list, err := e.st.ListDomains(context.Background(), store.DefaultProjectID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range list {
		out[d.Name] = d.Status
	}
	return out
}

// events lists the default project's events as "type domain status
// record-status", oldest first.
func (e *recheckEnv) events(t *testing.T) []string {
	t.Helper()
	evs, _, err := e.st.ListEvents(context.Background(), store.DefaultProjectID, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		var data struct {
			Status  string `json:"status"`
			Records []struct {
				Name, Status string
			} `json:"records"`
		}
		if err := json.Unmarshal(evs[i].Data, &data); err != nil {
			t.Fatal(err)
		}
		line := evs[i].Type + " " + evs[i].Domain + " " + data.Status
		for _, r := range data.Records {
			line += " " + r.Name + "=" + r.Status
		}
		out = append(out, line)
	}
	return out
}

// recheck runs one pass and wants n domains checked.
func (e *recheckEnv) recheck(t *testing.T, w *Worker, n int) {
	t.Helper()
	got, err := w.RecheckDomainsOnce(context.Background())
	if err != nil || got != n {
		t.Fatalf("re-check: %d checked, %v; want %d", got, err, n)
	}
}

// wantGauge compares mailgate_domain_verified with want (domain → value).
func (e *recheckEnv) wantGauge(t *testing.T, want map[string]int) {
	t.Helper()
	text := "# HELP mailgate_domain_verified 1 if the sender domain is verified (in one project), 0 if it is registered but pending or failed.\n" +
		"# TYPE mailgate_domain_verified gauge\n"
	for _, d := range []string{"a.example", "b.example"} {
		text += fmt.Sprintf("mailgate_domain_verified{domain=%q} %d\n", d, want[d])
	}
	if err := testutil.CollectAndCompare(NewDomainCollector(e.st), strings.NewReader(text), "mailgate_domain_verified"); err != nil {
		t.Error(err)
	}
}

// TestDomainRecheck: on a fake clock, a verified domain is not checked
// before the interval; once due, a record removed from DNS makes it
// failed (event with the record missing, gauge 0, broadcast), the record
// back makes it verified again (event, gauge 1); a lookup error (SERVFAIL)
// leaves every status as it is and writes nothing.
func TestDomainRecheck(t *testing.T) {
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			e := newRecheckEnv(t, url)
			e.verified(t, "a.example")
			e.verified(t, "b.example")
			w := e.worker()
			e.recheck(t, w, 0)
			e.clock.Advance(recheckInterval - time.Second)
			e.recheck(t, w, 0)

			e.clock.Advance(2 * time.Second)
			e.dns.Clear(dkimName("a.example"))
			e.recheck(t, w, 2)
			e.recheck(t, w, 0) // claimed: not due again until the interval has passed
			wantStatuses := map[string]string{"a.example": store.DomainFailed, "b.example": store.DomainVerified}
			if diff := cmp.Diff(wantStatuses, e.statuses(t)); diff != "" {
				t.Errorf("after the record was removed (-want +got):\n%s", diff)
			}
			e.wantGauge(t, map[string]int{"a.example": 0, "b.example": 1})
			if got := e.pub.take(); !cmp.Equal(got, []string{queue.DomainChange(store.DefaultProjectID, "a.example")}) {
				t.Errorf("broadcasts %q, want a.example's change", got)
			}

			e.clock.Advance(recheckInterval + time.Second)
			e.dns.AddTXT(dkimName("a.example"), dkimValue("a.example"))
			e.recheck(t, w, 2)
			wantStatuses["a.example"] = store.DomainVerified
			if diff := cmp.Diff(wantStatuses, e.statuses(t)); diff != "" {
				t.Errorf("after the record came back (-want +got):\n%s", diff)
			}
			e.wantGauge(t, map[string]int{"a.example": 1, "b.example": 1})

			e.clock.Advance(recheckInterval + time.Second)
			e.dns.Clear(dkimName("b.example"))
			e.dns.Rcode(dns.RcodeServerFailure)
			e.recheck(t, w, 2)
			if diff := cmp.Diff(wantStatuses, e.statuses(t)); diff != "" {
				t.Errorf("after lookups failed (-want +got):\n%s", diff)
			}
			e.wantGauge(t, map[string]int{"a.example": 1, "b.example": 1})
			if got := e.pub.take(); len(got) != 1 {
				t.Errorf("broadcasts %q, want only a.example's return", got)
			}

			want := []string{
				"domain.verified a.example verified",
				"domain.verified b.example verified",
				"domain.verification_failed a.example failed s1._domainkey.a.example=missing",
				"domain.verified a.example verified s1._domainkey.a.example=found",
			}
			if diff := cmp.Diff(want, e.events(t)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDomainRecheckTwoWorkers: two workers re-checking at once check
// each due domain once between them: as many DNS lookups as domains.
func TestDomainRecheckTwoWorkers(t *testing.T) {
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			e := newRecheckEnv(t, url)
			const n = 20
			for i := range n {
				e.verified(t, fmt.Sprintf("d%02d.example", i))
			}
			e.clock.Advance(recheckInterval + time.Second)
			queries := e.dns.Queries("udp") + e.dns.Queries("tcp")
			workers := []*Worker{e.worker(), e.worker()}
			checked := make([]int, len(workers))
			errs := make([]error, len(workers))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					checked[i], errs[i] = w.RecheckDomainsOnce(context.Background())
				}()
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if checked[0]+checked[1] != n {
				t.Errorf("checked %v, want %d between them", checked, n)
			}
			if got := e.dns.Queries("udp") + e.dns.Queries("tcp") - queries; got != n {
				t.Errorf("%d DNS queries, want %d: one per domain", got, n)
			}
		})
	}
}

// TestDomainRecheckOff: an interval of zero checks nothing.
func TestDomainRecheckOff(t *testing.T) {
	e := newRecheckEnv(t, testsvc.SQLiteURL(t))
	e.verified(t, "a.example")
	e.clock.Advance(365 * 24 * time.Hour)
	w := New(Config{Now: e.clock.Now}, Deps{Store: e.st, Resolver: dnscheck.NewResolver(e.dns.Addr)})
	e.recheck(t, w, 0)
}
