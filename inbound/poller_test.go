package inbound

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/store"
)

// run starts p.Run and returns a stop function that cancels it and waits.
func run(t *testing.T, p *Poller) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

// countingTokens counts lock attempts and signals each on ch.
func countingTokens(n *atomic.Int64, ch chan struct{}) func() (string, error) {
	return func() (string, error) {
		n.Add(1)
		notify(ch)
		return randomToken()
	}
}

func TestRunProcessesMailbox(t *testing.T) {
	t.Parallel()
	url := testsvc.SQLiteURL(t)
	e := newEnv(t, url)
	id := e.sentMessage("ann@example.org")
	src := newFakeSource("run", Message{ID: "1", Raw: e.fixture("dsn-userunknown", id, 0, "ann@example.org")})
	stop := run(t, e.poller(Config{}, src))
	await(t, src.doneCh, "Done")
	stop()
	if got := e.recipientStatus(id, 0); got != store.StatusBounced {
		t.Errorf("status %q, want bounced", got)
	}
	if held, err := e.rdb.Exists(context.Background(), e.prefix+"run").Result(); err != nil || held != 0 {
		t.Errorf("lock still held after Run returned: %d, %v", held, err)
	}
}

func TestOnePollerPerMailbox(t *testing.T) {
	t.Parallel()
	onePollerPerMailbox(t, newEnv(t, testsvc.SQLiteURL(t)))
}

// onePollerPerMailbox: while one poller holds a mailbox's lock, a second
// one tries it again and again but never fetches; it takes over once the
// first stops.
func onePollerPerMailbox(t *testing.T, e *env) {
	srcA, srcB := newFakeSource("shared"), newFakeSource("shared")
	stopA := run(t, e.poller(Config{}, srcA))
	await(t, srcA.fetched, "first poller's Fetch")

	var attempts atomic.Int64
	tried := make(chan struct{}, 100)
	run(t, e.poller(Config{NewToken: countingTokens(&attempts, tried)}, srcB))
	for attempts.Load() < 3 {
		await(t, tried, "second poller's lock attempts")
	}
	if n := srcB.fetchCount(); n != 0 {
		t.Fatalf("second poller fetched %d times while the first held the lock", n)
	}
	stopA()
	await(t, srcB.fetched, "second poller taking over")
}

func TestTakeOverExpiredLock(t *testing.T) {
	t.Parallel()
	takeOverExpiredLock(t, newEnv(t, testsvc.SQLiteURL(t)))
}

// takeOverExpiredLock: a lock left by a poller that crashed is taken over
// once it expires.
func takeOverExpiredLock(t *testing.T, e *env) {
	// A poller that crashed left its lock behind; it expires soon.
	if err := e.rdb.Set(context.Background(), e.prefix+"crashed", "dead-poller", 300*time.Millisecond).Err(); err != nil {
		t.Fatalf("set lock: %v", err)
	}
	src := newFakeSource("crashed")
	run(t, e.poller(Config{}, src))
	await(t, src.fetched, "takeover after expiry")
	token, err := e.rdb.Get(context.Background(), e.prefix+"crashed").Result()
	if err != nil || token == "dead-poller" {
		t.Errorf("lock = %q, %v; want our token", token, err)
	}
}

// TestPollerLockOnRedisHA: the mailbox lock (SET NX PX, and scripts on
// that one key to renew and release it) on a three-node Redis Cluster and
// on a Sentinel setup: one poller per mailbox, takeover after a crash,
// the lock renewed while held and released when Run returns.
func TestPollerLockOnRedisHA(t *testing.T) {
	setups := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"cluster", func(t *testing.T) string { return testsvc.StartCluster(t, 3).URL() }},
		{"sentinel", func(t *testing.T) string { return testsvc.StartSentinel(t).URL(0) }},
	}
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			redisURL := setup.url(t)
			onePollerPerMailbox(t, newEnvRedis(t, testsvc.SQLiteURL(t), redisURL))
			takeOverExpiredLock(t, newEnvRedis(t, testsvc.SQLiteURL(t), redisURL))
			e := newEnvRedis(t, testsvc.SQLiteURL(t), redisURL)
			src := newFakeSource("released")
			stop := run(t, e.poller(Config{LockTTL: 600 * time.Millisecond}, src))
			await(t, src.fetched, "Fetch")
			ctx, key := context.Background(), e.prefix+"released"
			// The expiry only goes down unless the holder renews it.
			lowest, err := e.rdb.PTTL(ctx, key).Result()
			if err != nil || lowest <= 0 {
				t.Fatalf("lock PTTL %v, %v; want it held with an expiry", lowest, err)
			}
			renewed := false
			for deadline := time.Now().Add(5 * time.Second); !renewed && time.Now().Before(deadline); {
				ttl, err := e.rdb.PTTL(ctx, key).Result()
				if err != nil || ttl <= 0 {
					t.Fatalf("lock PTTL %v, %v while the poller runs", ttl, err)
				}
				renewed, lowest = ttl > lowest, min(lowest, ttl)
				time.Sleep(10 * time.Millisecond)
			}
			if !renewed {
				t.Errorf("lock expiry never extended (renew script) within 5 s")
			}
			stop()
			if held, err := e.rdb.Exists(context.Background(), e.prefix+"released").Result(); err != nil || held != 0 {
				t.Errorf("lock still held after Run returned: %d, %v", held, err)
			}
		})
	}
}
