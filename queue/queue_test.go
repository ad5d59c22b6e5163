package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/internal/testsvc"
)

func TestEnqueueSendIsIdempotentAndCancellable(t *testing.T) {
	ctx := context.Background()
	c, in := newTestClient(t)
	for i := 0; i < 2; i++ {
		if err := c.EnqueueSend(ctx, "m1", time.Time{}); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := c.EnqueueSend(ctx, "m2", at); err != nil {
		t.Fatal(err)
	}
	qi, err := in.GetQueueInfo(QueueSend)
	if err != nil {
		t.Fatal(err)
	}
	if qi.Pending != 1 || qi.Scheduled != 1 {
		t.Fatalf("pending %d scheduled %d, want 1 and 1", qi.Pending, qi.Scheduled)
	}
	ti, err := in.GetTaskInfo(QueueSend, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ParseSendPayload(ti.Payload); err != nil || p.MessageID != "m1" {
		t.Fatalf("payload %s: %v", ti.Payload, err)
	}
	if err := c.CancelSend("m2"); err != nil {
		t.Fatal(err)
	}
	if err := c.CancelSend("m2"); err != nil {
		t.Fatalf("cancelling a missing task must not fail: %v", err)
	}
	if _, err := in.GetTaskInfo(QueueSend, "m2"); err == nil {
		t.Fatal("cancelled task still there")
	}
}

func TestParseSendPayloadRefuses(t *testing.T) {
	for _, b := range []string{``, `{}`, `{"message_id":""}`, `[1]`} {
		if _, err := ParseSendPayload([]byte(b)); err == nil {
			t.Fatalf("ParseSendPayload(%q) accepted", b)
		}
	}
}

// TestOpenRedisHidesPassword: the error for a bad Redis URL never shows
// its password, whether the URL does not parse, its password ends the
// authority early (an unescaped '/', '?' or '#') or only a later part is bad.
func TestOpenRedisHidesPassword(t *testing.T) {
	for _, u := range []string{
		"redis://:s3cretpw@127.0.0.1:6379/x",
		"redis://:s3cretpw@127.0.0.1:port/0",
		"redis://u:s3cretpw/x@127.0.0.1:6379/0",
		"redis://u:12/s3cretpw@127.0.0.1:6379/0",
		"redis://u:12#s3cretpw@127.0.0.1:6379/0",
		"redis://u:12?s3cretpw@127.0.0.1:6379/0",
		"redis://:s3cretpw@127.0.0.1:6379/0?dial_timeout=x",
		"redis-sentinel://:s3cretpw@h1:1,h2:2",
		"redis-sentinel://:s3cretpw@h1:1,h2:2?master=m&db=x",
		"redis-sentinel://:s3cretpw@h1:1,h2:2\x00?master=m",
		"redis-cluster://:s3cretpw@h1:1,h2:2\x00",
		"bogus://:s3cretpw@host",
	} {
		t.Run(u, func(t *testing.T) {
			_, err := OpenRedis(u)
			if err == nil {
				t.Fatal("OpenRedis succeeded")
			}
			if strings.Contains(err.Error(), "s3cretpw") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestEnqueueSendBatch: a batch's task is idempotent like a message's,
// carries the ids in order, and never shares its id with a message's task.
func TestEnqueueSendBatch(t *testing.T) {
	ctx := context.Background()
	c, in := newTestClient(t)
	id := "batch:m1"
	for i := 0; i < 2; i++ {
		if err := c.EnqueueSendBatch(ctx, id, []string{"m1", "m2"}); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if err := c.EnqueueSendRetried(ctx, "m1", time.Time{}, 2); err != nil {
		t.Fatal(err)
	}
	qi, err := in.GetQueueInfo(QueueSend)
	if err != nil || qi.Pending != 2 {
		t.Fatalf("queue %+v (%v), want the batch's task and m1's", qi, err)
	}
	ti, err := in.GetTaskInfo(QueueSend, id)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ParseSendBatchPayload(ti.Payload); err != nil || ti.Type != TypeSendBatch ||
		strings.Join(p.MessageIDs, ",") != "m1,m2" {
		t.Fatalf("batch task %s payload %s: %v", ti.Type, ti.Payload, err)
	}
	ti, err = in.GetTaskInfo(QueueSend, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ParseSendPayload(ti.Payload); err != nil || p.MessageID != "m1" || p.Retried != 2 {
		t.Fatalf("handed-over payload %s: %v", ti.Payload, err)
	}
	for _, b := range []string{``, `{}`, `{"message_ids":[]}`} {
		if _, err := ParseSendBatchPayload([]byte(b)); err == nil {
			t.Errorf("ParseSendBatchPayload(%q) accepted", b)
		}
	}
}

// newTestClient is a Client and an Inspector on an empty test Redis
// database.
// TestCancelSendLeavesRunningTask: cancelling the task of a message whose
// send is running succeeds and leaves the task alone (the handler re-reads
// the recipients' statuses before sending).
func TestCancelSendLeavesRunningTask(t *testing.T) {
	ctx := context.Background()
	c, in := newTestClient(t)
	if err := c.EnqueueSend(ctx, "m1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	rdb, err := OpenRedis(testsvc.RedisURLDB(t, 8))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	started, release := make(chan struct{}), make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{QueueSend: 1},
		LogLevel: asynq.FatalLevel})
	handler := asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		close(started)
		<-release
		return nil
	})
	if err := srv.Start(handler); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	<-started
	if err := c.CancelSend("m1"); err != nil {
		t.Fatalf("cancelling a running task: %v", err)
	}
	ti, err := in.GetTaskInfo(QueueSend, "m1")
	if err != nil {
		t.Fatalf("the running task is gone: %v", err)
	}
	if ti.State != asynq.TaskStateActive {
		t.Errorf("task state %v, want active", ti.State)
	}
}

func newTestClient(t *testing.T) (*Client, *asynq.Inspector) {
	t.Helper()
	rdb, err := OpenRedis(testsvc.RedisURLDB(t, 8))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	return New(Config{}, rdb), asynq.NewInspectorFromRedisClient(rdb)
}
