package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestSentinelFailoverLosesNothing: api and two workers on a Redis
// Sentinel setup (a primary, a replica, three sentinels), a relay limit of
// 50/s, messages posted one at a time without pause. Once the sink has 10,
// the primary is killed (SIGKILL: what it had not replicated is lost) and
// the sentinels promote the replica; posting goes on until 20 more are
// accepted after the failover. Meanwhile the API still accepts (the
// database is the truth; an enqueue that fails is the reconciler's), so
// some messages are accepted while no primary answers. Every accepted
// message (202) ends sent and arrives exactly once; nothing else arrives.
func TestSentinelFailoverLosesNothing(t *testing.T) {
	s := testsvc.StartSentinel(t)
	sink := startSink(t, nil)
	g := newGatewayRedis(t, testsvc.PostgresURL(t), s.URL(0),
		"MAILGATE_RELAYS="+relayURL(sink.Port, "rate=50/s"),
		"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example", "MAILGATE_WORKER_CONCURRENCY=4",
		"MAILGATE_RETRY_BASE=1s", "MAILGATE_RECONCILE_INTERVAL=1s", "MAILGATE_RECONCILE_GRACE=2s")
	token := g.createKey("messages:send", "messages:read")
	c := newClient(t, g.start("api"), token)
	g.start("worker")
	g.start("worker")

	p := startPosting(c)
	if !sink.WaitMessages(10, 30*time.Second) {
		p.stop()
		t.Fatalf("sink has %d messages before the failover, want ≥ 10", len(sink.Messages()))
	}
	old := s.KillPrimary()
	killed := time.Now()
	before := p.acceptedCount()
	s.WaitFailover(old)
	during := p.acceptedCount() - before
	for deadline := time.Now().Add(30 * time.Second); p.acceptedCount() < before+during+20; {
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("%d messages accepted in the 30 s after the failover, want 20", p.acceptedCount()-before-during)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids, refused := p.stop()
	t.Logf("accepted %d messages (%d while no primary answered), refused %d; primary %s → %s",
		len(ids), during, refused, old, s.Primary())
	if during == 0 {
		t.Error("no message was accepted while the primary was down: the failover was not in the middle of the run")
	}

	// asynq v0.26 writes a task's end (done, or a retry) to Redis once and,
	// when that fails, retries it with a context already cancelled; a
	// task that ended while no primary answered therefore stays active
	// until asynq's recoverer takes it back: its lease (30 s) expired 30 s
	// ago, looked for every minute. Its message was held back, not sent,
	// so it goes out then: up to about two minutes after the kill.
	if !sink.WaitMessages(len(ids), time.Until(killed.Add(150*time.Second))) {
		t.Errorf("sink has %d messages 150 s after the kill, want %d", len(sink.Messages()), len(ids))
	}
	t.Logf("the last message arrived %s after the kill", time.Since(killed).Round(time.Second))
	waitFor(t, 10*time.Second, "every accepted message sent", func() bool {
		return len(c.listMessages("sent")) == len(ids)
	})
	checkExactlyOnce(t, ids, copiesByID(t, sink.Messages()))
}

// TestClusterSendPath: api and two workers on a three-node Redis Cluster,
// limits of 10/s per relay and per API key, 30 messages (20 in a batch
// request, 10 one at a time: both enqueue paths). Every message ends sent
// and arrives once; the limits hold (no one-second window holds more than
// 10 + 2, and the 30 take at least 2.8 s) and are used (under 8 s); more
// than one node holds mailgate's keys (the cluster really shards them).
func TestClusterSendPath(t *testing.T) {
	const n, perSecond = 30, 10
	cl := testsvc.StartCluster(t, 3)
	var seen arrivals
	sink := startSink(t, seen.decide)
	g := newGatewayRedis(t, testsvc.PostgresURL(t), cl.URL(),
		"MAILGATE_RELAYS="+relayURL(sink.Port, "rate=10/s"), "MAILGATE_RATE_KEY=10/s",
		"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example", "MAILGATE_WORKER_CONCURRENCY=8")
	token := g.createKey("messages:send", "messages:read")
	c := newClient(t, g.start("api"), token)
	g.start("worker")
	g.start("worker")

	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = simpleMessage(i)
	}
	ids := c.sendBatch(msgs[:20])
	for _, m := range msgs[20:] {
		var out struct {
			ID string `json:"id"`
		}
		c.do(http.MethodPost, "/v1/messages", m, &out, http.StatusAccepted)
		ids = append(ids, out.ID)
	}
	if !sink.WaitMessages(n, 60*time.Second) {
		t.Fatalf("sink has %d of %d messages", len(sink.Messages()), n)
	}
	waitFor(t, 10*time.Second, "every message sent", func() bool {
		return len(c.listMessages("sent")) == n
	})
	checkExactlyOnce(t, ids, copiesByID(t, sink.Messages()))

	times := seen.snapshot()
	worst, at := busiestWindow(times, time.Second)
	span := times[len(times)-1].Sub(times[0])
	t.Logf("%d arrivals over %s; busiest 1 s window holds %d (from arrival %d)",
		len(times), span.Round(time.Millisecond), worst, at)
	if worst > perSecond+2 {
		t.Errorf("%d messages arrived within one second, limit 10/s allows %d", worst, perSecond+2)
	}
	if low := time.Duration(n-2) * time.Second / perSecond; span < low {
		t.Errorf("%d messages arrived within %s, limit 10/s needs at least %s", n, span, low)
	}
	if span > 8*time.Second {
		t.Errorf("%d messages took %s: the limit of 10/s is mostly unused", n, span)
	}

	holding := 0
	for _, addr := range cl.Addrs() {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		keys, err := rdb.DBSize(context.Background()).Result()
		rdb.Close()
		if err != nil {
			t.Fatalf("DBSIZE on %s: %v", addr, err)
		}
		if keys > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("%d of 3 cluster nodes hold keys, want the keys spread over at least 2", holding)
	}
}

// checkExactlyOnce fails unless each of ids arrived once and nothing else
// arrived.
func checkExactlyOnce(t *testing.T, ids []string, copies map[string]int) {
	t.Helper()
	accepted := map[string]bool{}
	for _, id := range ids {
		accepted[id] = true
		if copies[id] != 1 {
			t.Errorf("message %s arrived %d times, want 1", id, copies[id])
		}
	}
	for id, k := range copies {
		if !accepted[id] {
			t.Errorf("message %s arrived %d times but was never accepted", id, k)
		}
	}
}

// posting posts one message at a time (POST /v1/messages) until stopped,
// keeping the ids of those accepted (202) and counting the others.
type posting struct {
	mu       sync.Mutex
	ids      []string
	refused  int
	stopping chan struct{}
	done     chan struct{}
}

func startPosting(c *client) *posting {
	p := &posting{stopping: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stopping:
				return
			default:
			}
			id := c.trySend(simpleMessage(i))
			p.mu.Lock()
			if id != "" {
				p.ids = append(p.ids, id)
			} else {
				p.refused++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *posting) acceptedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// stop ends the posting and returns the accepted ids and the number of
// messages refused.
func (p *posting) stop() ([]string, int) {
	select {
	case <-p.stopping:
	default:
		close(p.stopping)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...), p.refused
}

// trySend posts one message and returns its id when it was accepted
// (202), "" otherwise (any other answer, or no answer).
func (c *client) trySend(msg map[string]any) string {
	b, _ := json.Marshal(msg)
	req, err := http.NewRequest(http.MethodPost, c.base+"/v1/messages", bytes.NewReader(b))
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&out) != nil {
		return ""
	}
	return out.ID
}
