package ratelimit

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestPolicyOnRedisHA: on a three-node Redis Cluster and on a Sentinel
// setup, two Policies with connections of their own (two workers) share
// every budget as on one server: sender domain, API key, the relay's
// slow-down and the API's request limit (Limiter.Allow). Each check runs
// one GCRA script on one key (redis_rate), and the slow-down is one hash,
// so no command spans two hash slots.
func TestPolicyOnRedisHA(t *testing.T) {
	setups := []struct {
		name string
		open func(t *testing.T) func() redis.UniversalClient
	}{
		{"cluster", func(t *testing.T) func() redis.UniversalClient {
			addrs := testsvc.StartCluster(t, 3).Addrs()
			return func() redis.UniversalClient { return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}) }
		}},
		{"sentinel", func(t *testing.T) func() redis.UniversalClient {
			addrs := testsvc.StartSentinel(t).SentinelAddrs()
			return func() redis.UniversalClient {
				return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: testsvc.SentinelMaster, SentinelAddrs: addrs})
			}
		}},
	}
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			connect := setup.open(t)
			clock := newFakeClock()
			cfg := PolicyConfig{Now: clock.Now, Relay: map[string][]Limit{"r1": {perHour(10)}},
				SenderDomain: []Limit{perHour(3)}, Key: []Limit{perHour(2)}, SlowDown: testSlowDown()}
			var workers [2]*Policy
			for i := range workers {
				rdb := connect()
				t.Cleanup(func() { _ = rdb.Close() })
				workers[i] = NewPolicy(cfg, New(Config{}, rdb))
			}
			sum := func(r Request, n int) map[string]int {
				got := tally(t, workers[0], r, n)
				for s, k := range tally(t, workers[1], r, n) {
					got[s] += k
				}
				return got
			}
			got := map[string]map[string]int{
				"sender domain": sum(Request{SenderDomain: "a.example"}, 3),
				"key":           sum(Request{KeyID: "k1"}, 3),
			}
			if err := workers[0].SlowDown(context.Background(), "r1"); err != nil {
				t.Fatalf("SlowDown: %v", err)
			}
			got["slowed relay"] = sum(Request{Relay: "r1"}, 5)
			api := map[string]int{}
			for i := range 6 {
				d, err := workers[i%2].lim.Allow(context.Background(), "key", "k1", perHour(4))
				if err != nil {
					t.Fatalf("Allow: %v", err)
				}
				api[map[bool]string{true: "allowed", false: "refused"}[d.Allowed]]++
			}
			got["api"] = api
			want := map[string]map[string]int{
				"sender domain": {"": 3, ScopeSenderDomain: 3},
				"key":           {"": 2, ScopeKey: 4},
				"slowed relay":  {"": 5, ScopeRelay: 5},
				"api":           {"allowed": 4, "refused": 2},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcomes across two workers (-want +got):\n%s", diff)
			}
		})
	}
}
