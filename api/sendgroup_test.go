package api

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/queue"
)

// TestConcurrentSendsShareBatchTasks: concurrent POST /v1/messages
// committed together share a batch send task. Whatever the grouping, each
// message is named by exactly one task (its own or one batch's), and a
// message stored with a batch id is named by that batch's task.
func TestConcurrentSendsShareBatchTasks(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		const n = 48
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { ids[i] = e.send(t, e.sender, message()).ID })
		}
		wg.Wait()
		tasks, err := e.inspector().ListPendingTasks(queue.QueueSend, asynq.PageSize(1000))
		if err != nil {
			t.Fatal(err)
		}
		namedBy := map[string][]string{}
		batches := 0
		for _, ti := range tasks {
			switch ti.Type {
			case queue.TypeSend:
				p, err := queue.ParseSendPayload(ti.Payload)
				if err != nil || ti.ID != p.MessageID {
					t.Fatalf("task %s payload %s: %v", ti.ID, ti.Payload, err)
				}
				namedBy[p.MessageID] = append(namedBy[p.MessageID], ti.ID)
			case queue.TypeSendBatch:
				p, err := queue.ParseSendBatchPayload(ti.Payload)
				if err != nil {
					t.Fatal(err)
				}
				batches++
				for _, id := range p.MessageIDs {
					namedBy[id] = append(namedBy[id], ti.ID)
				}
			}
		}
		refs, err := e.store.MessagesAwaitingTask(context.Background(), e.clock.Now().Add(time.Hour), 1000)
		if err != nil || len(refs) != n {
			t.Fatalf("%d messages awaiting (%v), want %d", len(refs), err, n)
		}
		for _, r := range refs {
			want := r.ID
			if r.BatchID != "" {
				want = r.BatchID
			}
			if got := namedBy[r.ID]; len(got) != 1 || got[0] != want {
				t.Errorf("message %s (batch %q) is named by tasks %v, want %s alone", r.ID, r.BatchID, got, want)
			}
		}
		for _, id := range ids {
			if _, ok := namedBy[id]; !ok {
				t.Errorf("accepted message %s has no task", id)
			}
		}
		t.Logf("%d messages, %d tasks, %d of them batches", n, len(tasks), batches)
	})
}
