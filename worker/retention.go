package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mailgate/mailgate/store"
)

// Retention is how long the reconciler keeps each kind of record; a zero
// age keeps that kind forever. Only messages in a final status
// (store.FinalStatuses) lose their content or rows; suppressions are
// never deleted.
type Retention struct {
	// Content is the age after which a final message's stored payload
	// (the request, text and HTML) is deleted; the message row, its
	// recipients and events stay until Messages.
	Content time.Duration
	// Messages is the age after which a final message is deleted with its
	// recipients, tags, payload and events.
	Messages time.Duration
	// Events is the age after which an event is deleted, whether or not
	// its message is still kept, with its webhook deliveries once done
	// (an event a delivery is still pending for stays); test deliveries
	// and the hour buckets of the overview's event counts are deleted at
	// this age too.
	Events time.Duration
	// Inbound is the age after which inbound mail (the report summary and
	// the raw head) is deleted.
	Inbound time.Duration
	// Idempotency is the age after which idempotency records are deleted;
	// a record is honoured for store.IdempotencyTTL whatever this says.
	Idempotency time.Duration
	// BatchSize is how many rows one batch (one transaction) deletes.
	// Default 1000.
	BatchSize int
	// MaxBatches bounds the batches one reconciler pass runs after a full
	// one, in all kinds together (each kind, and each final status of
	// messages and content, also gets one batch a pass), so that a large
	// backlog (retention turned on over a full database) is worked off
	// over several passes and the reconciler's other work goes on.
	// Default 100.
	MaxBatches int
}

func (r Retention) withDefaults() Retention {
	if r.BatchSize <= 0 {
		r.BatchSize = 1000
	}
	if r.MaxBatches <= 0 {
		r.MaxBatches = 100
	}
	return r
}

// Expired counts what one retention pass deleted, per kind.
type Expired struct {
	// Content counts the payloads deleted from messages that stay.
	Content int64
	// Messages counts the messages deleted, MessageEvents the events
	// deleted with them, Events the other events deleted for their age.
	Messages, MessageEvents, Events int64
	// Inbound and Idempotency count inbound mail and idempotency records.
	Inbound, Idempotency int64
	// TestDeliveries counts the webhook test deliveries deleted (by the
	// events' age); deliveries of events go with their event.
	TestDeliveries int64
	// EventCounts counts the hour buckets of the overview's event counts
	// deleted (by the events' age: they are kept as long as what they
	// count).
	EventCounts int64
}

// empty reports that nothing was deleted.
func (e Expired) empty() bool { return e == Expired{} }

// retention runs the retention passes of one worker. Each batch is its
// own short transaction; between two batches it waits as long as the
// last one took, so the cleanup takes at most about half of the time the
// database could give it and sending goes on. Two workers may clean up
// at once: on PostgreSQL each batch skips the rows another holds, on
// SQLite the single writer runs one batch at a time.
type retention struct {
	cfg   Retention
	store *store.Store
	now   func() time.Time
	// mu serialises passes; content holds, per final status, where the
	// content pass resumes (store.ContentCursor).
	mu      sync.Mutex
	content map[string]store.ContentCursor
}

func newRetention(cfg Retention, st *store.Store, now func() time.Time) *retention {
	return &retention{cfg: cfg.withDefaults(), store: st, now: now, content: map[string]store.ContentCursor{}}
}

// run deletes what is older than its age, kind by kind (the small ones,
// idempotency records and inbound mail, first), within MaxBatches.
func (r *retention) run(ctx context.Context) (Expired, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out Expired
	now := r.now()
	cutoff := func(age time.Duration) time.Time { return now.Add(-age) }
	budget := r.cfg.MaxBatches
	size := r.cfg.BatchSize
	var steps []func() (bool, error)
	if age := r.cfg.Idempotency; age > 0 {
		steps = append(steps, func() (bool, error) {
			n, err := r.store.ExpireIdempotencyKeys(ctx, cutoff(age), size)
			out.Idempotency += n
			return n < int64(size), err
		})
	}
	if age := r.cfg.Inbound; age > 0 {
		steps = append(steps, func() (bool, error) {
			n, err := r.store.ExpireInbound(ctx, cutoff(age), size)
			out.Inbound += n
			return n < int64(size), err
		})
	}
	for _, st := range store.FinalStatuses {
		if age := r.cfg.Messages; age > 0 {
			steps = append(steps, func() (bool, error) {
				got, err := r.store.ExpireMessages(ctx, st, cutoff(age), size)
				out.Messages += got.Messages
				out.MessageEvents += got.Events
				return got.Messages < int64(size), err
			})
		}
	}
	for _, st := range store.FinalStatuses {
		if age := r.cfg.Content; age > 0 {
			steps = append(steps, func() (bool, error) {
				from := r.content[st]
				// Messages past their own age are the messages step's.
				if m := r.cfg.Messages; m > 0 && from.CreatedAt.Before(cutoff(m)) {
					from = store.ContentCursor{CreatedAt: cutoff(m)}
				}
				n, seen, next, err := r.store.ExpireContent(ctx, st, cutoff(age), from, size)
				out.Content += n
				r.content[st] = next
				return seen < size, err
			})
		}
	}
	if age := r.cfg.Events; age > 0 {
		steps = append(steps, func() (bool, error) {
			n, done, err := r.store.ExpireEvents(ctx, cutoff(age), size)
			out.Events += n
			return done, err
		})
		steps = append(steps, func() (bool, error) {
			n, err := r.store.ExpireTestDeliveries(ctx, cutoff(age), size)
			out.TestDeliveries += n
			return n < int64(size), err
		})
		steps = append(steps, func() (bool, error) {
			n, err := r.store.ExpireEventCounts(ctx, cutoff(age), size)
			out.EventCounts += n
			return n < int64(size), err
		})
	}
	for _, step := range steps {
		if err := r.batches(ctx, &budget, step); err != nil {
			return out, err
		}
	}
	return out, nil
}

// batches runs batch until it reports done or fails. Each batch that is
// not the last (it came back full) counts off budget and is followed by a
// pause as long as it took (by the injected clock); once budget is spent
// each kind gets one batch a pass, so no kind waits for another's backlog.
func (r *retention) batches(ctx context.Context, budget *int, batch func() (done bool, err error)) error {
	for {
		start := r.now()
		done, err := batch()
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		if done || *budget <= 0 {
			return nil
		}
		*budget--
		if err := pause(ctx, r.now().Sub(start)); err != nil {
			return err
		}
	}
}

// pause waits d, or until ctx is done.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
