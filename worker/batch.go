package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/queue"
)

// A batch request's messages share one send task (queue.TypeSendBatch):
// one enqueue, one dequeue and one completion in Redis for the whole
// batch instead of one of each per message. The batch task makes only the
// first attempt at each message (store.StartFirstDelivery, checked under
// the message's lock); a message it cannot finish, deferred, held back by
// a rate limit or found attempted before (a batch run cut short), is
// handed over to a send task of its own (task id = message id), which
// makes every later attempt. So a message is never started by its batch's
// task once it was started at all, and a message's own task exists only
// after its first start: the two never send the same message.

// handleSendBatch is the batch send task's handler: the first attempt at
// each message, up to Concurrency at once across all tasks. It fails (and
// asynq runs it again) only when a message could neither be sent nor
// handed over; the messages already handled are then skipped or handed
// over again, which is idempotent.
func (w *Worker) handleSendBatch(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseSendBatchPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if w.deps.Deliverer == nil {
		return errNoDelivery
	}
	ctx = withStopping(ctx, w.stopping)
	errs := make([]error, len(p.MessageIDs))
	roomy := w.roomy(ctx)
	var cut error
	var wg sync.WaitGroup
	for i, id := range p.MessageIDs {
		if err := w.acquire(ctx); err != nil {
			errs[i] = err // this message and the rest are untouched
			break
		}
		if why := w.stopStarting(ctx, i == 0 && !roomy); why != "" {
			w.release()
			cut = &cutShort{left: len(p.MessageIDs) - i, why: why}
			break
		}
		wg.Go(func() {
			defer w.release()
			errs[i] = w.sendFirstRecovered(ctx, id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return cut
}

// cutShort: a send or batch send task stopped starting messages (the
// worker is stopping, or too little of the task's time is left for another
// whole SMTP transaction). The run is not a failed attempt: asynq runs the
// task again at once, on this worker or another, and that run skips or
// hands over what this one did.
type cutShort struct {
	left int
	why  string
}

func (c *cutShort) Error() string {
	return fmt.Sprintf("send cut short (%s): %d messages left for the next run", c.why, c.left)
}

// roomy reports whether ctx leaves at least the deliverer's StartMargin,
// so that a run may start its first message only with that much time
// left too (a task timeout below the margin lets it start one message per
// run).
func (w *Worker) roomy(ctx context.Context) bool {
	return !w.deps.Deliverer.deadlineNear(ctx)
}

// stopStarting says why a message must not be started now, or "" when it
// may be; exempt lets it start however near the deadline is.
func (w *Worker) stopStarting(ctx context.Context, exempt bool) string {
	select {
	case <-w.stopping:
		return "worker stopping"
	default:
	}
	if !exempt && w.deps.Deliverer.deadlineNear(ctx) {
		return "task deadline near"
	}
	return ""
}

// sendFirstRecovered is sendFirst with a panic turned into an error, as
// asynq does for a handler's own goroutine: one message's panic must not
// take the worker, and its other sends, down. The batch task then fails
// and runs again; the message, if started, is handed over.
func (w *Worker) sendFirstRecovered(ctx context.Context, id string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("send %s: panic: %v", id, p)
		}
	}()
	return w.sendFirst(ctx, id)
}

// sendFirst makes the first attempt at one message of a batch and hands
// over what it could not finish. Its error means the message is neither
// done nor handed over.
func (w *Worker) sendFirst(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil { // stopping: leave it untouched for the rerun
		return err
	}
	err := w.deps.Deliverer.DeliverFirst(ctx, id)
	var held *heldBack
	var ns *notStarted
	var cut *cutShort
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cut): // started, some recipients left: its own task goes on at once
		return w.handOver(ctx, id, 0, 0)
	case errors.Is(err, asynq.SkipRetry):
		w.deps.Log.Warn("batch send", "message_id", id, "err", err)
		return nil
	case errors.As(err, &ns):
		return fmt.Errorf("start %s: %w", id, err)
	case errors.Is(err, errAttempted):
		return w.handOver(ctx, id, 0, 0)
	case errors.As(err, &held):
		return w.handOver(ctx, id, held.after, 0)
	default: // a failed attempt (deferred, or an error after the start)
		return w.handOver(ctx, id, w.deps.Deliverer.backoff(0), 1)
	}
}

// handOver enqueues a message's own send task, after the given delay,
// carrying the failed attempts the batch task made. The message's start is
// already written, so the enqueue runs even when the task is being
// cancelled.
func (w *Worker) handOver(ctx context.Context, id string, after time.Duration, retried int) error {
	var at time.Time
	if after > 0 {
		at = w.cfg.Now().Add(after)
	}
	if err := w.deps.Queue.EnqueueSendRetried(context.WithoutCancel(ctx), id, at, retried); err != nil {
		return fmt.Errorf("hand %s over to its own task: %w", id, err)
	}
	return nil
}

// acquire takes one of the Concurrency delivery slots shared by every
// send and batch send task.
func (w *Worker) acquire(ctx context.Context) error {
	select {
	case w.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release returns a slot taken by acquire.
func (w *Worker) release() { <-w.slots }
