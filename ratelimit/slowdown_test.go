package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testCoolOff is the cool-off of testSlowDown.
const testCoolOff = 5 * time.Minute

// testSlowDown is the slow-down configuration of these tests.
func testSlowDown() SlowDownConfig {
	return SlowDownConfig{CoolOff: testCoolOff, RecoverStep: time.Minute, MaxLevel: 3, Hold: 10 * time.Second}
}

func TestSlowDownHalvesAcrossInstances(t *testing.T) {
	cfg := PolicyConfig{Relay: map[string][]Limit{"r1": {perHour(10)}}, SlowDown: testSlowDown()}
	p, clock := newTestPolicy(t, cfg)
	cfg.Now = clock.Now
	other := NewPolicy(cfg, New(Config{}, newRedis(t, false))) // a second worker
	if err := p.SlowDown(context.Background(), "r1"); err != nil {
		t.Fatalf("SlowDown: %v", err)
	}
	got := tally(t, other, Request{Relay: "r1"}, 20)
	if diff := cmp.Diff(map[string]int{"": 5, ScopeRelay: 15}, got); diff != "" {
		t.Errorf("outcomes on the other worker while slowed (-want +got):\n%s", diff)
	}
}

func TestSlowDownRecovers(t *testing.T) {
	p, clock := newTestPolicy(t, PolicyConfig{Relay: map[string][]Limit{"r1": {perHour(10)}}, SlowDown: testSlowDown()})
	if err := p.SlowDown(context.Background(), "r1"); err != nil {
		t.Fatalf("SlowDown: %v", err)
	}
	clock.Advance(testCoolOff)
	got := tally(t, p, Request{Relay: "r1"}, 20)
	if diff := cmp.Diff(map[string]int{"": 10, ScopeRelay: 10}, got); diff != "" {
		t.Errorf("outcomes after the cool-off (-want +got):\n%s", diff)
	}
}

func TestRelayLimitsOverTime(t *testing.T) {
	base := []Limit{PerSecond(40), perMinute(1000), perHour(3)}
	p, clock := newTestPolicy(t, PolicyConfig{Relay: map[string][]Limit{"r1": base}, SlowDown: testSlowDown()})
	ctx := context.Background()
	steps := []struct {
		name    string
		advance time.Duration
		slow    bool
		want    []Limit
	}{
		{name: "configured", want: base},
		{name: "first 421", slow: true, want: []Limit{PerSecond(20), perMinute(500), perHour(1)}},
		{name: "421 within hold only extends", advance: 5 * time.Second, slow: true,
			want: []Limit{PerSecond(20), perMinute(500), perHour(1)}},
		{name: "421 after hold halves again", advance: 10 * time.Second, slow: true,
			want: []Limit{PerSecond(10), perMinute(250), perHour(1)}},
		{name: "third 421", advance: time.Minute, slow: true, want: []Limit{PerSecond(5), perMinute(125), perHour(1)}},
		{name: "capped at MaxLevel", advance: time.Minute, slow: true, want: []Limit{PerSecond(5), perMinute(125), perHour(1)}},
		{name: "still cooling off", advance: testCoolOff - time.Second, want: []Limit{PerSecond(5), perMinute(125), perHour(1)}},
		{name: "cool-off over: one step back", advance: time.Second, want: []Limit{PerSecond(10), perMinute(250), perHour(1)}},
		{name: "second step", advance: time.Minute, want: []Limit{PerSecond(20), perMinute(500), perHour(1)}},
		{name: "recovered", advance: time.Minute, want: base},
		{name: "stays recovered", advance: time.Hour, want: base},
		{name: "new 421 starts over", slow: true, want: []Limit{PerSecond(20), perMinute(500), perHour(1)}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clock.Advance(st.advance)
			if st.slow {
				if err := p.SlowDown(ctx, "r1"); err != nil {
					t.Fatalf("SlowDown: %v", err)
				}
			}
			got, err := p.RelayLimits(ctx, "r1")
			if err != nil {
				t.Fatalf("RelayLimits: %v", err)
			}
			if diff := cmp.Diff(st.want, got); diff != "" {
				t.Errorf("RelayLimits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSlowDownUnconfiguredRelay(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{SlowDown: SlowDownConfig{Unlimited: perHour(8)}})
	ctx := context.Background()
	if got, err := p.RelayLimits(ctx, "r1"); err != nil || got != nil {
		t.Fatalf("RelayLimits before = %v, %v; want none", got, err)
	}
	if err := p.SlowDown(ctx, "r1"); err != nil {
		t.Fatalf("SlowDown: %v", err)
	}
	got := tally(t, p, Request{Relay: "r1"}, 10)
	if diff := cmp.Diff(map[string]int{"": 4, ScopeRelay: 6}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestSlowDownDisabledAndBadInput(t *testing.T) {
	p, _ := newTestPolicy(t, PolicyConfig{Relay: map[string][]Limit{"r1": {perHour(10)}},
		SlowDown: SlowDownConfig{Disabled: true}})
	ctx := context.Background()
	if err := p.SlowDown(ctx, ""); !errors.Is(err, ErrNoRelay) {
		t.Errorf("SlowDown(\"\") = %v, want ErrNoRelay", err)
	}
	if err := p.SlowDown(ctx, "r1"); err != nil {
		t.Fatalf("SlowDown: %v", err)
	}
	got, err := p.RelayLimits(ctx, "r1")
	if err != nil {
		t.Fatalf("RelayLimits: %v", err)
	}
	if diff := cmp.Diff([]Limit{perHour(10)}, got); diff != "" {
		t.Errorf("RelayLimits with slow-down disabled (-want +got):\n%s", diff)
	}
}

func TestIsRateAnswer(t *testing.T) {
	tests := []struct {
		code int
		text string
		want bool
	}{
		{421, "4.7.28 Our system has detected an unusual rate of unsolicited mail", true},
		{421, "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume", true},
		{451, "4.7.500 Server busy. Please try again later", true},
		{451, "4.3.2 Too many connections, slow down", true},
		{421, "4.3.2 Service shutting down", false},
		{450, "4.2.1 rate limited", false},
		{550, "5.7.1 rate limit exceeded", false},
		{451, "4.3.0 Local error in processing", false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := IsRateAnswer(tt.code, tt.text); got != tt.want {
				t.Errorf("IsRateAnswer(%d, %q) = %v, want %v", tt.code, tt.text, got, tt.want)
			}
		})
	}
}

// TestSlowDownStateCache: a worker reuses the slow-down state it read for
// StateCache, so another worker's halving reaches it only once that has
// passed; with the cache off it sees the halving at once.
func TestSlowDownStateCache(t *testing.T) {
	base := []Limit{perHour(10)}
	for _, tc := range []struct {
		name  string
		cache time.Duration
		want  []Limit
	}{
		{"cached for an hour", time.Hour, base},
		{"not cached", -1, []Limit{perHour(5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			sd := testSlowDown()
			sd.StateCache = tc.cache
			cfg := PolicyConfig{Relay: map[string][]Limit{"r1": base}, SlowDown: sd}
			p, clock := newTestPolicy(t, cfg)
			cfg.Now = clock.Now
			other := NewPolicy(cfg, New(Config{}, newRedis(t, false)))
			if _, err := other.RelayLimits(ctx, "r1"); err != nil {
				t.Fatalf("RelayLimits: %v", err)
			}
			if err := p.SlowDown(ctx, "r1"); err != nil {
				t.Fatalf("SlowDown: %v", err)
			}
			got, err := other.RelayLimits(ctx, "r1")
			if err != nil {
				t.Fatalf("RelayLimits: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("limits on the other worker (-want +got):\n%s", diff)
			}
			own, err := p.RelayLimits(ctx, "r1")
			if err != nil {
				t.Fatalf("RelayLimits: %v", err)
			}
			if diff := cmp.Diff([]Limit{perHour(5)}, own); diff != "" {
				t.Errorf("limits on the worker that slowed down (-want +got):\n%s", diff)
			}
		})
	}
}
