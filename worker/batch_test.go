package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// TestBatchTaskFirstAttemptsAndHandsOver: a batch send task sends what it
// can at the first attempt and hands every other message to a task of its
// own: a deferred one with its retry delay and one failed attempt carried
// over, one found attempted before (a batch run killed mid-send) at once
// and without sending it; a message that no longer exists is dropped. Run
// again (asynq retrying it, or the reconciler recreating it), it sends
// nothing twice and creates no second task. The handed-over task then
// finishes the interrupted message, flagged possibly_duplicated.
func TestBatchTaskFirstAttemptsAndHandsOver(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			r := newRig(t, url, nil, fastTimeouts())
			tries := &sinkTries{}
			r.sink.SetDecide(func(_, to string, _ []byte) smtptest.Action {
				tries.add(to)
				if to == "later@example.net" {
					return reply(451, smtp.EnhancedCode{4, 3, 0}, "temporary")
				}
				return smtptest.Action{}
			})
			sent := r.accept([]string{"ann@example.org"}, nil, nil)
			deferred := r.accept([]string{"later@example.net"}, nil, nil)
			interrupted := r.accept([]string{"carl@example.org"}, nil, nil)
			if _, _, err := r.st.StartDelivery(ctx, interrupted, time.Now().Add(time.Hour)); err != nil { // a run killed mid-send
				t.Fatal(err)
			}
			missing := "01900000-0000-7000-8000-999999999999"
			q := queue.New(queue.Config{}, r.rdb)
			w := New(Config{Concurrency: 2}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
			payload, _ := json.Marshal(queue.SendBatchPayload{MessageIDs: []string{sent, deferred, interrupted, missing}})
			task := asynq.NewTask(queue.TypeSendBatch, payload)
			in := asynq.NewInspectorFromRedisClient(r.rdb)

			began := time.Now()
			if err := w.handleSendBatch(ctx, task); err != nil {
				t.Fatalf("batch task: %v", err)
			}
			if tries.get("ann@example.org") != 1 || tries.get("later@example.net") != 1 || tries.get("carl@example.org") != 0 {
				t.Fatalf("sink tries %v, want ann and later once, carl never", tries)
			}
			if st := r.message(sent).Status; st != store.StatusSent {
				t.Errorf("sent message is %s", st)
			}
			if st := r.message(deferred).Status; st != store.StatusDeferred {
				t.Errorf("deferred message is %s", st)
			}
			info := handedOver(t, in, deferred, 1)
			if d := info.NextProcessAt.Sub(began); d < time.Minute-2*time.Second || d > time.Minute+2*time.Second {
				t.Errorf("deferred message's task runs %v after the batch, want the first retry delay (1m)", d)
			}
			if info := handedOver(t, in, interrupted, 0); info.State != asynq.TaskStatePending {
				t.Errorf("interrupted message's task is %v, want pending (now)", info.State)
			}
			for _, id := range []string{sent, missing} {
				if _, err := in.GetTaskInfo(queue.QueueSend, id); err == nil {
					t.Errorf("message %s got a task of its own", id)
				}
			}

			if err := w.handleSendBatch(ctx, task); err != nil {
				t.Fatalf("batch task run again: %v", err)
			}
			if tries.get("ann@example.org") != 1 || tries.get("later@example.net") != 1 || tries.get("carl@example.org") != 0 {
				t.Fatalf("sink tries %v after the second run, want no new attempt", tries)
			}
			qi, err := in.GetQueueInfo(queue.QueueSend)
			if err != nil || qi.Size != 2 {
				t.Fatalf("queue size %v (%v), want the two handed-over tasks", qi, err)
			}

			single, _ := json.Marshal(queue.SendPayload{MessageID: interrupted})
			if err := w.handleSend(ctx, asynq.NewTask(queue.TypeSend, single)); err != nil {
				t.Fatalf("handed-over task: %v", err)
			}
			if m := r.message(interrupted); m.Status != store.StatusSent || !m.PossiblyDuplicated || tries.get("carl@example.org") != 1 {
				t.Errorf("interrupted message %s flagged %v, sent %d times; want sent once, flagged",
					m.Status, m.PossiblyDuplicated, tries.get("carl@example.org"))
			}
		})
	}
}

// handedOver fails unless message id has a send task of its own carrying
// retried failed attempts.
func handedOver(t *testing.T, in *asynq.Inspector, id string, retried int) *asynq.TaskInfo {
	t.Helper()
	info, err := in.GetTaskInfo(queue.QueueSend, id)
	if err != nil {
		t.Fatalf("message %s was not handed over: %v", id, err)
	}
	p, err := queue.ParseSendPayload(info.Payload)
	if err != nil || p.MessageID != id || p.Retried != retried || info.Type != queue.TypeSend {
		t.Fatalf("task %s payload %s (%v), want message %s with retried %d", info.Type, info.Payload, err, id, retried)
	}
	return info
}

// TestBatchTaskStartFailureRetriesTheBatch: when a message's start fails
// (the database refuses it), nothing was written, so the message is not
// handed over: the batch task fails and runs again.
func TestBatchTaskStartFailureRetriesTheBatch(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	id := r.accept([]string{"ann@example.org"}, nil, nil)
	q := queue.New(queue.Config{}, r.rdb)
	w := New(Config{}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
	if err := r.st.Close(); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(queue.SendBatchPayload{MessageIDs: []string{id}})
	err := w.handleSendBatch(ctx, asynq.NewTask(queue.TypeSendBatch, payload))
	var ns *notStarted
	if err == nil || !errors.As(err, &ns) {
		t.Fatalf("batch task = %v, want the start's failure", err)
	}
	if _, err := asynq.NewInspectorFromRedisClient(r.rdb).GetTaskInfo(queue.QueueSend, id); err == nil {
		t.Fatal("a message that was never started was handed over")
	}
}

// TestRetryDelayGoesOnFromTheBatch: a task handed over after one failed
// attempt waits as the message's own task would after two.
func TestRetryDelayGoesOnFromTheBatch(t *testing.T) {
	d := NewDeliverer(DeliveryConfig{}, DeliveryDeps{})
	for _, tt := range []struct {
		retried, n int
		want       time.Duration
	}{{0, 0, time.Minute}, {1, 0, 2 * time.Minute}, {1, 2, 8 * time.Minute}, {3, 10, time.Hour}} {
		p, _ := json.Marshal(queue.SendPayload{MessageID: "m", Retried: tt.retried})
		if got := d.RetryDelay(tt.n, errDeferred, asynq.NewTask(queue.TypeSend, p)); got != tt.want {
			t.Errorf("retried %d, n %d: delay %v, want %v", tt.retried, tt.n, got, tt.want)
		}
	}
}

// TestBatchTaskRecoversAPanic: a panic while sending one message of a
// batch (here a deliverer without a store) fails the batch task instead
// of crashing the worker process.
func TestBatchTaskRecoversAPanic(t *testing.T) {
	w := New(Config{}, Deps{Deliverer: NewDeliverer(DeliveryConfig{}, DeliveryDeps{})})
	payload, _ := json.Marshal(queue.SendBatchPayload{MessageIDs: []string{"m1", "m2"}})
	err := w.handleSendBatch(context.Background(), asynq.NewTask(queue.TypeSendBatch, payload))
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("batch task = %v, want the panic as its error", err)
	}
}

// TestBatchTaskStopsStarting: a batch run starts no message once the
// worker is stopping, and no message but its first once less than
// StartMargin is left before the task's deadline. The run ends with
// a cut that is not a failure and retries at once; the next run sends
// the rest, each message exactly once.
func TestBatchTaskStopsStarting(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(w *Worker) (context.Context, context.CancelFunc)
		wantSent int
	}{
		{name: "deadline near", wantSent: 1, prepare: func(*Worker) (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 10*time.Minute) // margin: 32 minutes
		}},
		{name: "worker stopping", wantSent: 0, prepare: func(w *Worker) (context.Context, context.CancelFunc) {
			close(w.stopping)
			return context.WithCancel(context.Background())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
			tries := &sinkTries{}
			r.sink.SetDecide(func(_, to string, _ []byte) smtptest.Action {
				tries.add(to)
				return smtptest.Action{}
			})
			ids := []string{
				r.accept([]string{"ann@example.org"}, nil, nil),
				r.accept([]string{"bob@example.org"}, nil, nil),
				r.accept([]string{"cid@example.org"}, nil, nil),
			}
			q := queue.New(queue.Config{}, r.rdb)
			w := New(Config{Concurrency: 1}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
			payload, _ := json.Marshal(queue.SendBatchPayload{MessageIDs: ids})
			task := asynq.NewTask(queue.TypeSendBatch, payload)

			ctx, cancel := tt.prepare(w)
			err := w.handleSendBatch(ctx, task)
			cancel()
			var cut *cutShort
			if !errors.As(err, &cut) || cut.left != len(ids)-tt.wantSent {
				t.Fatalf("batch run = %v, want a cut leaving %d", err, len(ids)-tt.wantSent)
			}
			if IsFailure(err) || r.d.RetryDelay(3, err, task) > time.Second {
				t.Fatalf("a cut is a failure (%v) or waits %v", IsFailure(err), r.d.RetryDelay(3, err, task))
			}
			if tries.len() != tt.wantSent {
				t.Fatalf("sink tries %v, want %d messages sent", tries, tt.wantSent)
			}
			waiting, err := r.st.MessagesAwaitingTask(context.Background(), r.clock.Add(time.Hour), 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(waiting) != len(ids)-tt.wantSent {
				t.Fatalf("%d messages queued after the cut, want %d", len(waiting), len(ids)-tt.wantSent)
			}
			for _, ref := range waiting {
				if ref.Attempted || !slices.Contains(ids[tt.wantSent:], ref.ID) {
					t.Fatalf("message %s after the cut: attempted %v, want one the cut left, untouched", ref.ID, ref.Attempted)
				}
			}

			next := New(Config{Concurrency: 1}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
			if err := next.handleSendBatch(context.Background(), task); err != nil {
				t.Fatalf("next run: %v", err)
			}
			for _, id := range ids {
				if st := r.message(id).Status; st != store.StatusSent {
					t.Errorf("message %s is %s after the next run", id, st)
				}
			}
			for to, n := range tries.snapshot() {
				if n != 1 {
					t.Errorf("%s received %d times", to, n)
				}
			}
			if tries.len() != len(ids) {
				t.Errorf("sink tries %v, want every message once", tries)
			}
		})
	}
}

// TestStopStarting: a message may start unless the worker is stopping or
// less than StartMargin is left, exempt only for a run that began with
// less than that (a task timeout below the margin).
func TestStopStarting(t *testing.T) {
	w := New(Config{}, Deps{Deliverer: NewDeliverer(DeliveryConfig{StartMargin: 5 * time.Minute}, DeliveryDeps{})})
	withTimeout := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	tests := []struct {
		name        string
		ctx         context.Context
		exempt      bool
		wantRoomy   bool
		wantStopped bool
	}{
		{"no deadline", context.Background(), false, true, false},
		{"deadline far", withTimeout(10 * time.Minute), false, true, false},
		{"deadline near", withTimeout(time.Minute), false, false, true},
		{"deadline near, exempt", withTimeout(time.Minute), true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.roomy(tt.ctx); got != tt.wantRoomy {
				t.Errorf("roomy = %v, want %v", got, tt.wantRoomy)
			}
			if got := w.stopStarting(tt.ctx, tt.exempt) != ""; got != tt.wantStopped {
				t.Errorf("stopped = %v, want %v", got, tt.wantStopped)
			}
		})
	}
	close(w.stopping)
	if w.stopStarting(context.Background(), true) == "" {
		t.Error("a stopping worker starts messages")
	}
}

// TestSendTaskStartsNothingWhileStopping: a message's own send task that
// gets its slot once the worker is stopping leaves the message untouched
// and runs again at once, not as a failed attempt.
func TestSendTaskStartsNothingWhileStopping(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	id := r.accept([]string{"ann@example.org"}, nil, nil)
	q := queue.New(queue.Config{}, r.rdb)
	w := New(Config{}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
	close(w.stopping)
	payload, _ := json.Marshal(queue.SendPayload{MessageID: id})
	task := asynq.NewTask(queue.TypeSend, payload)
	err := w.handleSend(context.Background(), task)
	var cut *cutShort
	if !errors.As(err, &cut) || IsFailure(err) || r.d.RetryDelay(0, err, task) > time.Second {
		t.Fatalf("send task while stopping = %v, want a cut that is no failure and retries at once", err)
	}
	if n := len(r.sink.Messages()); n != 0 {
		t.Fatalf("sink received %d messages", n)
	}
	waiting, err := r.st.MessagesAwaitingTask(context.Background(), r.clock.Add(time.Hour), 10)
	if err != nil || len(waiting) != 1 || waiting[0].Attempted {
		t.Fatalf("after the cut: %+v, %v; want the message queued, never attempted", waiting, err)
	}
}

// TestSendCutBetweenRecipients: with less than StartMargin left before the
// task's deadline, a send makes its first recipient's transaction and no
// other: the rest go back to queued and the task runs again at once (a
// batch task hands the message over to its own task at once); the next
// run sends the rest, each recipient once.
func TestSendCutBetweenRecipients(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
			tries := &sinkTries{}
			r.sink.SetDecide(func(_, to string, _ []byte) smtptest.Action {
				tries.add(to)
				return smtptest.Action{}
			})
			to := []string{"ann@example.org", "bob@example.org", "cid@example.org"}
			id := r.accept(to, nil, nil)
			q := queue.New(queue.Config{}, r.rdb)
			w := New(Config{}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // margin: 32 minutes
			defer cancel()
			single, _ := json.Marshal(queue.SendPayload{MessageID: id})
			if batch {
				payload, _ := json.Marshal(queue.SendBatchPayload{MessageIDs: []string{id}})
				if err := w.handleSendBatch(ctx, asynq.NewTask(queue.TypeSendBatch, payload)); err != nil {
					t.Fatalf("batch task: %v", err)
				}
				info := handedOver(t, asynq.NewInspectorFromRedisClient(r.rdb), id, 0)
				if info.State != asynq.TaskStatePending {
					t.Fatalf("handed-over task is %v, want pending (now)", info.State)
				}
			} else {
				task := asynq.NewTask(queue.TypeSend, single)
				err := w.handleSend(ctx, task)
				var cut *cutShort
				if !errors.As(err, &cut) || IsFailure(err) || r.d.RetryDelay(0, err, task) > time.Second {
					t.Fatalf("send task = %v, want a cut that is no failure and retries at once", err)
				}
			}
			m := r.message(id)
			got := []string{m.Recipients[0].Status, m.Recipients[1].Status, m.Recipients[2].Status}
			if want := []string{store.StatusSent, store.StatusQueued, store.StatusQueued}; !slices.Equal(got, want) {
				t.Fatalf("recipients %v after the cut, want %v", got, want)
			}
			if err := w.handleSend(context.Background(), asynq.NewTask(queue.TypeSend, single)); err != nil {
				t.Fatalf("next run: %v", err)
			}
			if m := r.message(id); m.Status != store.StatusSent || m.PossiblyDuplicated {
				t.Fatalf("message %s (possibly duplicated %v) after the next run, want sent", m.Status, m.PossiblyDuplicated)
			}
			for _, addr := range to {
				if tries.get(addr) != 1 {
					t.Errorf("%s received %d times, want once", addr, tries.get(addr))
				}
			}
		})
	}
}

// TestCutAfterDeferral: a run cut short after a recipient deferred backs
// off as a deferral (a failure, the retry schedule), not at once; the next
// run tries the recipient never tried before the deferred one; and a
// worker that begins to stop during a transaction starts no next
// recipient.
func TestCutAfterDeferral(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	var tried []string
	r.sink.SetDecide(func(_, to string, _ []byte) smtptest.Action {
		tried = append(tried, to)
		if to == "slow@example.net" {
			return reply(451, smtp.EnhancedCode{4, 3, 0}, "try later")
		}
		return smtptest.Action{}
	})
	id := r.accept([]string{"slow@example.net", "ann@example.org"}, nil, nil)
	q := queue.New(queue.Config{}, r.rdb)
	w := New(Config{}, Deps{Store: r.st, Queue: q, Redis: r.rdb, Deliverer: r.d})
	single, _ := json.Marshal(queue.SendPayload{MessageID: id})
	task := asynq.NewTask(queue.TypeSend, single)
	near, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // margin: 32 minutes
	defer cancel()

	err := w.handleSend(near, task)
	if !errors.Is(err, errDeferred) || !IsFailure(err) || r.d.RetryDelay(0, err, task) != time.Minute {
		t.Fatalf("cut after a deferral = %v (failure %v, delay %v), want the deferral's backoff",
			err, IsFailure(err), r.d.RetryDelay(0, err, task))
	}
	if !slices.Equal(tried, []string{"slow@example.net"}) {
		t.Fatalf("tried %v, want the first recipient alone", tried)
	}

	err = w.handleSend(near, task)
	var cut *cutShort
	if !errors.As(err, &cut) {
		t.Fatalf("second run = %v, want a cut", err)
	}
	if !slices.Equal(tried, []string{"slow@example.net", "ann@example.org"}) {
		t.Fatalf("tried %v, want ann (never tried) before the deferred one", tried)
	}

	// A stop that begins during a transaction.
	id = r.accept([]string{"bob@example.org", "cid@example.org"}, nil, nil)
	r.sink.SetDecide(func(_, to string, _ []byte) smtptest.Action {
		tried = append(tried, to)
		if to == "bob@example.org" {
			w.stopOnce.Do(func() { close(w.stopping) })
		}
		return smtptest.Action{}
	})
	single, _ = json.Marshal(queue.SendPayload{MessageID: id})
	err = w.handleSend(context.Background(), asynq.NewTask(queue.TypeSend, single))
	if !errors.As(err, &cut) || IsFailure(err) {
		t.Fatalf("run stopped mid-message = %v, want a cut that is no failure", err)
	}
	m := r.message(id)
	if got := []string{m.Recipients[0].Status, m.Recipients[1].Status}; !slices.Equal(got, []string{store.StatusSent, store.StatusQueued}) {
		t.Fatalf("recipients %v, want bob sent and cid left queued", got)
	}
}

// sinkTries counts the transactions the sink received per recipient; the
// sink's sessions run concurrently.
type sinkTries struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *sinkTries) add(to string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[to]++
}

func (c *sinkTries) get(to string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[to]
}

func (c *sinkTries) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (c *sinkTries) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

func (c *sinkTries) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.n)
}
