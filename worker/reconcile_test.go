package worker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// TestReconcileHealsLostEnqueue: a message committed without its task (a
// crash between commit and enqueue) gets exactly one task from the
// reconciler once it is older than the grace period, and a scheduled one
// keeps its time.
func TestReconcileHealsLostEnqueue(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			rdb, st := reconcileDeps(t, url)
			// asynq schedules by Redis's real clock: send_at must lie in
			// the real future (whole seconds: asynq keeps Unix seconds).
			now := time.Now().UTC().Truncate(time.Second)
			sendAt := now.Add(48 * time.Hour)
			msgs := []store.NewMessage{
				newMessage("01900000-0000-7000-8000-000000000001", now, nil, store.StatusQueued),
				newMessage("01900000-0000-7000-8000-000000000002", now, &sendAt, store.StatusScheduled),
				newMessage("01900000-0000-7000-8000-000000000003", now, nil, store.StatusSuppressed),
			}
			if _, err := st.CreateMessages(ctx, msgs, nil); err != nil {
				t.Fatal(err)
			}
			q := queue.New(queue.Config{}, rdb)
			clock := now
			w := New(Config{Now: func() time.Time { return clock }}, Deps{Store: st, Queue: q, Redis: rdb})
			in := asynq.NewInspectorFromRedisClient(rdb)

			if err := w.ReconcileOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := in.GetTaskInfo(queue.QueueSend, msgs[0].ID); err == nil {
				t.Fatal("reconciler enqueued a message still inside its grace period")
			}

			clock = now.Add(2 * time.Minute)
			for i := 0; i < 2; i++ { // twice: the second pass must not duplicate
				if err := w.ReconcileOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			info, err := in.GetTaskInfo(queue.QueueSend, msgs[0].ID)
			if err != nil {
				t.Fatalf("queued message has no task after reconcile: %v", err)
			}
			var p queue.SendPayload
			if err := json.Unmarshal(info.Payload, &p); err != nil || p.MessageID != msgs[0].ID {
				t.Fatalf("payload %s, want the message id only", info.Payload)
			}
			sched, err := in.GetTaskInfo(queue.QueueSend, msgs[1].ID)
			if err != nil {
				t.Fatalf("scheduled message has no task: %v", err)
			}
			if !sched.NextProcessAt.Equal(sendAt) {
				t.Fatalf("scheduled task at %v, want %v", sched.NextProcessAt, sendAt)
			}
			if _, err := in.GetTaskInfo(queue.QueueSend, msgs[2].ID); err == nil {
				t.Fatal("a message with only suppressed recipients got a task")
			}
			qi, err := in.GetQueueInfo(queue.QueueSend)
			if err != nil {
				t.Fatal(err)
			}
			if qi.Size != 2 {
				t.Fatalf("queue holds %d tasks, want 2", qi.Size)
			}
		})
	}
}

func newMessage(id string, now time.Time, sendAt *time.Time, status string) store.NewMessage {
	return store.NewMessage{
		ID: id, ProjectID: store.DefaultProjectID, KeyID: "k", From: "a@shop.example",
		FromDomain: "shop.example", Subject: "s", SendAt: sendAt, Payload: store.Payload{Request: []byte(`{}`)},
		Recipients: []store.NewRecipient{{Email: "b@example.org", Kind: store.KindTo, Status: status}},
		CreatedAt:  now,
	}
}

// TestReconcileBatchedMessages: a batched message never started gets its
// batch's task again (one task for the batch), while one started before
// and released (held back by a rate limit after its start) gets its own
// send task: a batch task would only find it attempted.
func TestReconcileBatchedMessages(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			rdb, st := reconcileDeps(t, url)
			now := time.Now().UTC().Truncate(time.Second)
			msgs := []store.NewMessage{
				newMessage("01900000-0000-7000-8000-000000000011", now, nil, store.StatusQueued),
				newMessage("01900000-0000-7000-8000-000000000012", now, nil, store.StatusQueued),
				newMessage("01900000-0000-7000-8000-000000000013", now, nil, store.StatusQueued),
			}
			batch := store.BatchID(msgs[0].ID) // created together, to be sent now
			if _, err := st.CreateMessages(ctx, msgs, nil); err != nil {
				t.Fatal(err)
			}
			// The third was started by its batch task, then released
			// (a rate limit held it back): queued again, attempted.
			dl, start, err := st.StartFirstDelivery(ctx, msgs[2].ID, time.Now().Add(time.Hour))
			if err != nil || len(start.Send) != 1 {
				t.Fatalf("start: %v, %+v", err, start)
			}
			rel := []store.Outcome{{Position: start.Send[0].Position, Email: start.Send[0].Email, Status: store.StatusQueued}}
			if err := st.RecordOutcomes(ctx, dl.ID, rel, time.Time{}); err != nil {
				t.Fatal(err)
			}

			q := queue.New(queue.Config{}, rdb)
			w := New(Config{Now: func() time.Time { return now.Add(2 * time.Minute) }},
				Deps{Store: st, Queue: q, Redis: rdb})
			if err := w.ReconcileOnce(ctx); err != nil {
				t.Fatal(err)
			}
			in := asynq.NewInspectorFromRedisClient(rdb)
			info, err := in.GetTaskInfo(queue.QueueSend, batch)
			if err != nil {
				t.Fatalf("the batch has no task after reconcile: %v", err)
			}
			var bp queue.SendBatchPayload
			if err := json.Unmarshal(info.Payload, &bp); err != nil {
				t.Fatal(err)
			}
			if want := []string{msgs[0].ID, msgs[1].ID}; !slices.Equal(bp.MessageIDs, want) {
				t.Fatalf("batch task carries %v, want the messages never started %v", bp.MessageIDs, want)
			}
			own, err := in.GetTaskInfo(queue.QueueSend, msgs[2].ID)
			if err != nil {
				t.Fatalf("the attempted message has no task of its own: %v", err)
			}
			if own.Type != queue.TypeSend {
				t.Fatalf("its task is a %q, want %q", own.Type, queue.TypeSend)
			}
			for _, m := range msgs[:2] {
				if _, err := in.GetTaskInfo(queue.QueueSend, m.ID); err == nil {
					t.Fatalf("message %s never started got a task of its own", m.ID)
				}
			}
		})
	}
}

// reconcileDeps are a flushed Redis database and a migrated store, closed
// when the test ends.
func reconcileDeps(t *testing.T, url string) (redis.UniversalClient, *store.Store) {
	t.Helper()
	ctx := context.Background()
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(t, 11))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	st, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	return rdb, st
}

// TestReconcileHealsLostRetry: a started message whose task is gone (a
// Redis that lost its data) gets its own send task again once its next
// attempt is due and the grace has passed, not before: one deferred by
// the deliverer (its retry due after the backoff of its failures so far),
// and one left sending by a worker that died with it (due at its task's
// deadline). A deferred message whose retry task still exists keeps it as
// it is: enqueueing its id again does nothing.
func TestReconcileHealsLostRetry(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, url, nil, fastTimeouts())
			r.sink.SetDecide(func(_, _ string, _ []byte) smtptest.Action {
				return reply(451, smtp.EnhancedCode{4, 3, 0}, "try later")
			})
			t0 := r.clock
			lost, kept, sending := r.accept([]string{"ann@example.org"}, nil, nil),
				r.accept([]string{"bob@example.org"}, nil, nil), r.accept([]string{"cid@example.org"}, nil, nil)
			for _, id := range []string{lost, kept} {
				if err := r.d.Deliver(ctx, id, 2); !errors.Is(err, errDeferred) {
					t.Fatalf("deliver %s: %v, want deferred", id, err)
				}
			}
			retryDue := t0.Add(4 * time.Minute) // RetryBase 1 minute, doubled for each of the 2 failures
			taskEnds := t0.Add(45 * time.Minute)
			if _, s, err := r.st.StartDelivery(ctx, sending, taskEnds); err != nil || len(s.Send) != 1 {
				t.Fatalf("start %s: %v %+v", sending, err, s)
			}

			q := queue.New(queue.Config{}, r.rdb)
			in := asynq.NewInspectorFromRedisClient(r.rdb)
			// Retry tasks as asynq would hold them, scheduled in Redis's
			// real future; the lost one is then deleted.
			retryAt := time.Now().Add(time.Hour).Truncate(time.Second)
			for _, id := range []string{lost, kept} {
				if err := q.EnqueueSend(ctx, id, retryAt); err != nil {
					t.Fatal(err)
				}
			}
			if err := in.DeleteTask(queue.QueueSend, lost); err != nil {
				t.Fatal(err)
			}
			const grace = time.Minute
			reconcileAt := func(at time.Time) {
				t.Helper()
				w := New(Config{Now: func() time.Time { return at }, ReconcileGrace: grace},
					Deps{Store: r.st, Queue: q, Redis: r.rdb})
				if err := w.ReconcileOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			task := func(id string) *asynq.TaskInfo {
				info, err := in.GetTaskInfo(queue.QueueSend, id)
				if err != nil {
					return nil
				}
				return info
			}

			reconcileAt(retryDue.Add(grace - time.Second))
			if task(lost) != nil || task(sending) != nil {
				t.Fatal("a message got a task before its next attempt was due")
			}
			reconcileAt(retryDue.Add(grace + time.Second))
			if info := task(lost); info == nil || info.State != asynq.TaskStatePending {
				t.Fatalf("deferred message past its retry has task %+v, want one pending", info)
			}
			if info := task(kept); info == nil || info.State != asynq.TaskStateScheduled || !info.NextProcessAt.Equal(retryAt) {
				t.Fatalf("deferred message with its retry task has %+v, want it still scheduled at %s", info, retryAt)
			}
			if task(sending) != nil {
				t.Fatal("a message sending under its task's deadline got a task")
			}
			reconcileAt(taskEnds.Add(grace + time.Second))
			if task(sending) == nil {
				t.Fatal("a message left sending past its task's deadline has no task")
			}
		})
	}
}
