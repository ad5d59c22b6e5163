package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestOpenRedisHA: the redis-sentinel:// and redis-cluster:// URL forms
// reach a real Sentinel setup (through its sentinels, to the primary, in
// the URL's database) and a real three-node Cluster, and asynq works on
// the client OpenRedis returns: an enqueue is idempotent, a scheduled
// task is cancelled, and a task is dequeued by a server on that client;
// a revocation published on one connection reaches a subscriber on another.
func TestOpenRedisHA(t *testing.T) {
	sentinel := testsvc.StartSentinel(t)
	cluster := testsvc.StartCluster(t, 3)
	for _, tt := range []struct{ name, url string }{
		{"sentinel", sentinel.URL(3)},
		{"cluster", cluster.URL()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			rdb, err := OpenRedis(tt.url)
			if err != nil {
				t.Fatalf("OpenRedis(%s): %v", tt.url, err)
			}
			defer rdb.Close()
			c := New(Config{}, rdb)
			for range 2 {
				if err := c.EnqueueSend(ctx, "m1", time.Time{}); err != nil {
					t.Fatalf("enqueue m1: %v", err)
				}
			}
			if err := c.EnqueueSend(ctx, "m2", time.Now().Add(time.Hour)); err != nil {
				t.Fatalf("enqueue m2: %v", err)
			}
			if err := c.CancelSend("m2"); err != nil {
				t.Fatalf("cancel m2: %v", err)
			}
			qi, err := c.in.GetQueueInfo(QueueSend)
			if err != nil || qi.Pending != 1 || qi.Scheduled != 0 {
				t.Fatalf("queue info %+v, %v; want 1 pending, 0 scheduled", qi, err)
			}

			got := make(chan string, 1)
			srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Queues: Queues(), Concurrency: 1,
				Logger: quietLogger{}})
			mux := asynq.NewServeMux()
			mux.HandleFunc(TypeSend, func(_ context.Context, task *asynq.Task) error {
				p, err := ParseSendPayload(task.Payload())
				if err == nil {
					got <- p.MessageID
				}
				return err
			})
			if err := srv.Start(mux); err != nil {
				t.Fatalf("asynq server: %v", err)
			}
			defer srv.Shutdown()
			select {
			case id := <-got:
				if id != "m1" {
					t.Errorf("dequeued %q, want m1", id)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the asynq server dequeued nothing within 10 s")
			}

			// Revocations reach a subscriber on another connection (on a
			// Cluster, PUBLISH reaches every node's subscribers).
			sub, err := OpenRedis(tt.url)
			if err != nil {
				t.Fatalf("OpenRedis: %v", err)
			}
			defer sub.Close()
			subscribed, received := make(chan struct{}, 1), make(chan string, 1)
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				_ = NewRevocations(sub).Subscribe(sctx, func() { subscribed <- struct{}{} },
					func(p string) { received <- p })
			}()
			select {
			case <-subscribed:
			case <-time.After(10 * time.Second):
				t.Fatal("not subscribed within 10 s")
			}
			if err := NewRevocations(rdb).Publish(ctx, "key-1"); err != nil {
				t.Fatalf("publish: %v", err)
			}
			select {
			case p := <-received:
				if p != "key-1" {
					t.Errorf("received %q, want key-1", p)
				}
			case <-time.After(10 * time.Second):
				t.Error("the revocation did not arrive within 10 s")
			}
		})
	}
	// The Sentinel URL's db=3 is the database the tasks went to.
	primary := redis.NewClient(&redis.Options{Addr: sentinel.Primary(), DB: 3})
	defer primary.Close()
	keys, err := primary.Keys(context.Background(), "asynq:*").Result()
	if err != nil || !strings.Contains(strings.Join(keys, " "), "asynq:{send}:") {
		t.Errorf("keys in database 3 of the primary: %v, %v; want asynq's", keys, err)
	}
}

// quietLogger drops asynq's log lines.
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}
