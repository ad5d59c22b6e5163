package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// testRedisDB is this package's Redis database number (see testsvc.RedisURLDB).
const testRedisDB = 12

// perHour is n events per hour: tests that count exact admissions use long
// periods so that the Redis clock moving on during the test cannot free an
// event.
func perHour(n int) Limit { return Limit{Events: n, Period: time.Hour} }

// fakeClock is an injectable clock, safe for concurrent reads.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newRedis connects to this package's test database; flush empties it first.
func newRedis(t *testing.T, flush bool) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testsvc.RedisURLDB(t, testRedisDB))
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	if flush {
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			testsvc.Missing(t, "redis FLUSHDB", err)
		}
	}
	return rdb
}

// newTestPolicy is a Policy on a flushed test database with a fake clock.
func newTestPolicy(t *testing.T, cfg PolicyConfig) (*Policy, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	return NewPolicy(cfg, New(Config{}, newRedis(t, true))), clock
}

// tally counts the outcomes of n Reserve calls by refusing scope ("" for allowed).
func tally(t *testing.T, p *Policy, r Request, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		res, err := p.Reserve(context.Background(), r)
		if err != nil {
			t.Fatalf("Reserve(%+v): %v", r, err)
		}
		got[res.Scope]++
	}
	return got
}

func TestReserveRelayPerSecond(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{Relay: map[string][]Limit{"r1": {PerSecond(5)}}})
	allowed, start := 0, time.Now()
	for i := range 20 {
		res, err := p.Reserve(context.Background(), Request{Relay: "r1", RecipientDomain: "example.org"})
		if err != nil {
			t.Fatalf("Reserve %d: %v", i, err)
		}
		if res.Allowed {
			allowed++
			continue
		}
		if res.Scope != ScopeRelay {
			t.Errorf("Reserve %d: scope %q, want %q", i, res.Scope, ScopeRelay)
		}
		if res.RetryAfter <= 0 || res.RetryAfter > time.Second {
			t.Errorf("Reserve %d: RetryAfter %v, want within (0, 1s]", i, res.RetryAfter)
		}
	}
	// 5 at once; the Redis clock frees one more every 200ms, which only
	// matters on a machine so loaded that 20 calls take that long.
	if most := 5 + int(time.Since(start)/(200*time.Millisecond)); allowed < 5 || allowed > most {
		t.Errorf("allowed %d of 20, want 5 (at most %d)", allowed, most)
	}
	if got := counterValue(t, p, ScopeRelay); got != float64(20-allowed) {
		t.Errorf("mailgate_ratelimit_delays_total{scope=relay} = %v, want %d", got, 20-allowed)
	}
}

func TestReserveUnconfiguredIsUnlimited(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{})
	got := tally(t, p, Request{Relay: "r1", RecipientDomain: "example.org", SenderDomain: "shop.example", KeyID: "k1"}, 200)
	if diff := cmp.Diff(map[string]int{"": 200}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestRecipientLimits(t *testing.T) {
	google := []Limit{PerSecond(20), perMinute(600)}
	tests := []struct {
		name   string
		cfg    PolicyConfig
		domain string
		want   []Limit
	}{
		{"gmail default", PolicyConfig{}, "gmail.com", google},
		{"googlemail default, case and dot", PolicyConfig{}, "GoogleMail.COM.", google},
		{"outlook default", PolicyConfig{}, "hotmail.com", []Limit{PerSecond(10), perMinute(300)}},
		{"web.de default", PolicyConfig{}, "web.de", []Limit{PerSecond(5), perMinute(150)}},
		{"other domain has none", PolicyConfig{}, "example.org", nil},
		{"subdomain is not the provider", PolicyConfig{}, "mail.gmail.com.example", nil},
		{"override", PolicyConfig{RecipientDomains: map[string][]Limit{"Gmail.com": {PerSecond(3)}}},
			"gmail.com", []Limit{PerSecond(3)}},
		{"override leaves sibling domain", PolicyConfig{RecipientDomains: map[string][]Limit{"gmail.com": {PerSecond(3)}}},
			"googlemail.com", google},
		{"override disables", PolicyConfig{RecipientDomains: map[string][]Limit{"gmail.com": nil}}, "gmail.com", nil},
		{"own domain", PolicyConfig{RecipientDomains: map[string][]Limit{"example.org": {PerSecond(1)}}},
			"example.org", []Limit{PerSecond(1)}},
		{"defaults off", PolicyConfig{DisableProviderDefaults: true}, "gmail.com", nil},
		{"defaults off, override kept", PolicyConfig{DisableProviderDefaults: true,
			RecipientDomains: map[string][]Limit{"yahoo.com": {PerSecond(2)}}}, "yahoo.com", []Limit{PerSecond(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPolicy(tt.cfg, nil)
			if diff := cmp.Diff(tt.want, p.RecipientLimits(tt.domain)); diff != "" {
				t.Errorf("RecipientLimits(%q) (-want +got):\n%s", tt.domain, diff)
			}
		})
	}
}

func TestReserveProviderDefaults(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{})
	// The google default allows 20 at once (20/s), shared by its domains;
	// the Redis clock frees one more every 50ms (only a very loaded machine
	// takes that long for 30 calls).
	start := time.Now()
	gmail := tally(t, p, Request{RecipientDomain: "gmail.com"}, 15)
	googlemail := tally(t, p, Request{RecipientDomain: "googlemail.com"}, 15)
	extra := int(time.Since(start) / (50 * time.Millisecond))
	other := tally(t, p, Request{RecipientDomain: "example.org"}, 100)
	if diff := cmp.Diff(map[string]int{"": 15}, gmail); diff != "" {
		t.Errorf("gmail.com (-want +got):\n%s", diff)
	}
	if n := googlemail[""]; n < 5 || n > 5+extra || googlemail[ScopeRecipientDomain] != 15-n {
		t.Errorf("googlemail.com outcomes %v, want 5 allowed (at most %d) and the rest refused: it shares google's budget", googlemail, 5+extra)
	}
	if diff := cmp.Diff(map[string]int{"": 100}, other); diff != "" {
		t.Errorf("example.org has no default (-want +got):\n%s", diff)
	}
}

func TestReserveRecipientOverrideAndDisable(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{RecipientDomains: map[string][]Limit{
		"gmail.com":   {perHour(3)},
		"outlook.com": nil,
	}})
	got := map[string]map[string]int{
		"gmail.com":   tally(t, p, Request{RecipientDomain: "gmail.com"}, 10),
		"outlook.com": tally(t, p, Request{RecipientDomain: "outlook.com"}, 50),
	}
	want := map[string]map[string]int{
		"gmail.com":   {"": 3, ScopeRecipientDomain: 7},
		"outlook.com": {"": 50},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes by domain (-want +got):\n%s", diff)
	}
}

func TestReserveSenderDomainAndKeyIndependent(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{SenderDomain: []Limit{perHour(3)}, Key: []Limit{perHour(2)}})
	got := map[string]map[string]int{
		"a.example": tally(t, p, Request{SenderDomain: "a.example"}, 5),
		"b.example": tally(t, p, Request{SenderDomain: "B.example"}, 5),
		"k1":        tally(t, p, Request{KeyID: "k1"}, 5),
		"k2":        tally(t, p, Request{KeyID: "k2"}, 5),
	}
	want := map[string]map[string]int{
		"a.example": {"": 3, ScopeSenderDomain: 2},
		"b.example": {"": 3, ScopeSenderDomain: 2},
		"k1":        {"": 2, ScopeKey: 3},
		"k2":        {"": 2, ScopeKey: 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestReserveDeliveryKeyLimitIsNotAPILimit(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{Key: []Limit{perHour(2)}})
	for range 5 {
		if _, err := p.lim.Allow(context.Background(), "key", "k1", perHour(100)); err != nil {
			t.Fatalf("API Allow: %v", err)
		}
	}
	if diff := cmp.Diff(map[string]int{"": 2}, tally(t, p, Request{KeyID: "k1"}, 2)); diff != "" {
		t.Errorf("delivery budget after API requests (-want +got):\n%s", diff)
	}
}

func TestReserveRefusalGivesBack(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{
		Relay:        map[string][]Limit{"r1": {perHour(5)}},
		SenderDomain: []Limit{perHour(1)},
		Key:          []Limit{perHour(100)},
	})
	first := tally(t, p, Request{Relay: "r1", SenderDomain: "a.example", KeyID: "k"}, 1)
	refused := tally(t, p, Request{Relay: "r1", SenderDomain: "a.example", KeyID: "k"}, 10)
	other := tally(t, p, Request{Relay: "r1", KeyID: "k"}, 6)
	want := []map[string]int{{"": 1}, {ScopeSenderDomain: 10}, {"": 4, ScopeRelay: 2}}
	if diff := cmp.Diff(want, []map[string]int{first, refused, other}); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

// TestReserveGiveBackBound shows the documented bound of giveBack: a bucket
// that was idle before the refused send stays one event short (until one
// emission interval has passed).
func TestReserveGiveBackBound(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{
		Relay:        map[string][]Limit{"r1": {perHour(5)}, "r2": {perHour(5)}},
		SenderDomain: []Limit{perHour(1)},
	})
	tally(t, p, Request{Relay: "r1", SenderDomain: "a.example"}, 1) // a.example's budget is spent
	refused := tally(t, p, Request{Relay: "r2", SenderDomain: "a.example"}, 3)
	r2 := tally(t, p, Request{Relay: "r2"}, 6)
	want := []map[string]int{{ScopeSenderDomain: 3}, {"": 4, ScopeRelay: 2}}
	if diff := cmp.Diff(want, []map[string]int{refused, r2}); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

// TestReserveSharedAcrossInstances runs two Policies on two Redis clients,
// as two worker processes would, against one 10-per-window budget.
func TestReserveSharedAcrossInstances(t *testing.T) {
	cfg := PolicyConfig{Relay: map[string][]Limit{"r1": {Limit{Events: 10, Period: time.Minute}}}}
	_ = newRedis(t, true)
	policies := []*Policy{
		NewPolicy(cfg, New(Config{}, newRedis(t, false))),
		NewPolicy(cfg, New(Config{}, newRedis(t, false))),
	}
	var (
		wg      sync.WaitGroup
		allowed [2]int
		errs    [2]error
	)
	for i, p := range policies {
		wg.Go(func() {
			for range 50 {
				res, err := p.Reserve(context.Background(), Request{Relay: "r1"})
				if err != nil {
					errs[i] = err
					return
				}
				if res.Allowed {
					allowed[i]++
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	if total := allowed[0] + allowed[1]; total != 10 {
		t.Errorf("allowed %d (%v), want 10", total, allowed)
	}
}

func TestPolicyRegister(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{SenderDomain: []Limit{perHour(1)}})
	reg := prometheus.NewPedanticRegistry()
	if err := p.Register(reg); err != nil {
		t.Fatalf("Register: %v", err)
	}
	tally(t, p, Request{SenderDomain: "a.example"}, 3)
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(families) != 1 || families[0].GetName() != "mailgate_ratelimit_delays_total" || len(families[0].GetMetric()) != 4 {
		t.Errorf("gathered %v, want mailgate_ratelimit_delays_total with one series per scope (4)", families)
	}
	if got := counterValue(t, p, ScopeSenderDomain); got != 2 {
		t.Errorf("delays{scope=sender_domain} = %v, want 2", got)
	}
}

// counterValue reads mailgate_ratelimit_delays_total{scope} of p.
func counterValue(t *testing.T, p *Policy, scope string) float64 {
	t.Helper()
	var m dto.Metric
	if err := p.delays.WithLabelValues(scope).Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return m.GetCounter().GetValue()
}
