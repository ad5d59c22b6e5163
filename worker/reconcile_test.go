package worker

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

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
			dl, start, err := st.StartFirstDelivery(ctx, msgs[2].ID)
			if err != nil || len(start.Send) != 1 {
				t.Fatalf("start: %v, %+v", err, start)
			}
			rel := []store.Outcome{{Position: start.Send[0].Position, Email: start.Send[0].Email, Status: store.StatusQueued}}
			if err := st.RecordOutcomes(ctx, dl.ProjectID, dl.ID, rel); err != nil {
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
// Redis that lost its data) — deferred and waiting for a retry that will
// never run, or left sending by a worker that died with it — gets its own
// send task again once its latest attempt is older than ReconcileStale;
// one attempted more recently is left to its task.
func TestReconcileHealsLostRetry(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			rdb, _ := reconcileDeps(t, url)
			t0 := time.Now().UTC().Truncate(time.Second)
			clock := t0
			st, err := store.Open(ctx, store.Config{URL: url, Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			msgs := []store.NewMessage{
				newMessage("01900000-0000-7000-8000-000000000021", t0, nil, store.StatusQueued), // deferred at t0
				newMessage("01900000-0000-7000-8000-000000000022", t0, nil, store.StatusQueued), // sending since t0
				newMessage("01900000-0000-7000-8000-000000000023", t0, nil, store.StatusQueued), // deferred at t0+90m
			}
			if _, err := st.CreateMessages(ctx, msgs, nil); err != nil {
				t.Fatal(err)
			}
			start := func(id string, deferred bool) {
				t.Helper()
				dl, s, err := st.StartDelivery(ctx, id)
				if err != nil || len(s.Send) != 1 {
					t.Fatalf("start %s: %v %+v", id, err, s)
				}
				if deferred {
					out := store.Outcome{Position: 0, Email: s.Send[0].Email, Status: store.StatusDeferred, SMTPCode: 451,
						Event: store.EventDeferred}
					if err := st.RecordAttemptOutcomes(ctx, dl.ProjectID, id, 1, []store.Outcome{out}); err != nil {
						t.Fatal(err)
					}
				}
			}
			start(msgs[0].ID, true)
			start(msgs[1].ID, false)
			clock = t0.Add(90 * time.Minute)
			start(msgs[2].ID, true)

			q := queue.New(queue.Config{}, rdb)
			in := asynq.NewInspectorFromRedisClient(rdb)
			reconcileAt := func(at time.Time) {
				t.Helper()
				w := New(Config{Now: func() time.Time { return at }}, Deps{Store: st, Queue: q, Redis: rdb})
				if err := w.ReconcileOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			hasTask := func(id string) bool {
				info, err := in.GetTaskInfo(queue.QueueSend, id)
				return err == nil && info.Type == queue.TypeSend
			}
			reconcileAt(t0.Add(119 * time.Minute))
			for _, m := range msgs {
				if hasTask(m.ID) {
					t.Fatalf("message %s got a task before it was overdue", m.ID)
				}
			}
			reconcileAt(t0.Add(121 * time.Minute))
			if !hasTask(msgs[0].ID) || !hasTask(msgs[1].ID) {
				t.Fatalf("overdue deferred (%v) and sending (%v) messages have no task", hasTask(msgs[0].ID), hasTask(msgs[1].ID))
			}
			if hasTask(msgs[2].ID) {
				t.Fatal("a message attempted 31 minutes ago got a task")
			}
		})
	}
}
