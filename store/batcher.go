package store

import (
	"context"
	"sync"
)

// Batching: concurrent calls of one kind (message commits; delivery
// starts and outcomes) are written together, several in one statement or
// transaction, so the database pays one commit and one WAL flush for the
// group instead of one per call. No call waits for a timer: the first caller writes at once,
// and callers arriving while a write is running queue up and are written
// together by the next one. Each caller still returns only after its own
// write is committed.
//
// Written by hand: database/sql and pgx batch statements a caller has
// already gathered, not independent requests arriving on their own.

// batcher queues requests of one kind and runs at most maxActive writers,
// each taking up to maxGroup requests at a time. run must answer every
// request of the group it is given.
type batcher[R any] struct {
	maxGroup  int
	maxActive int
	run       func(ctx context.Context, group []R)

	mu     sync.Mutex
	queue  []R
	active int
}

func newBatcher[R any](maxGroup, maxActive int, run func(context.Context, []R)) *batcher[R] {
	return &batcher[R]{maxGroup: max(1, maxGroup), maxActive: max(1, maxActive), run: run}
}

// submit queues r and, when a writer slot is free, writes groups until
// the queue is empty enough to hand on. The caller waits for r's own
// answer after submit returns.
func (b *batcher[R]) submit(ctx context.Context, r R) {
	b.mu.Lock()
	b.queue = append(b.queue, r)
	lead := b.active < b.maxActive
	if lead {
		b.active++
	}
	b.mu.Unlock()
	if lead {
		b.writeNext(context.WithoutCancel(ctx))
	}
}

// writeNext holds one writer slot: it writes the next group, then hands
// the slot on to a new goroutine when more requests are waiting (so that
// its own caller answers without waiting for them), or gives it back.
func (b *batcher[R]) writeNext(ctx context.Context) {
	b.mu.Lock()
	group := b.takeLocked()
	if len(group) == 0 {
		b.active--
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	b.run(ctx, group)
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.active--
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	go b.writeNext(ctx)
}

// takeLocked removes up to maxGroup requests from the queue.
func (b *batcher[R]) takeLocked() []R {
	n := min(len(b.queue), b.maxGroup)
	group := make([]R, n)
	copy(group, b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return group
}
