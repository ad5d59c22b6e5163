package store

import (
	"context"
	"sync"
)

// Group commit: concurrent CommitMessage calls are written together, several
// messages in one statement (PostgreSQL) or one transaction (SQLite), so
// the database pays one round trip, one plan and one WAL flush for the
// group instead of one per message. No call waits for a timer: the first
// caller writes at once, and callers arriving while a write is running
// queue up and are written together by the next one. Each caller still
// returns only after its own message is committed.
//
// Written by hand: database/sql and pgx batch statements a caller has
// already gathered, not independent requests arriving on their own.

// commitRequest is one CommitMessage call waiting for its group.
type commitRequest struct {
	msg  NewMessage
	idem *IdempotencyResult
	done chan error // buffered: the writer never blocks on it
}

// grouper queues commit requests and runs at most maxActive writers.
type grouper struct {
	store     *Store
	maxGroup  int
	maxActive int

	mu     sync.Mutex
	queue  []*commitRequest
	active int
}

func newGrouper(s *Store, maxGroup, maxActive int) *grouper {
	return &grouper{store: s, maxGroup: max(1, maxGroup), maxActive: max(1, maxActive)}
}

// CommitMessage commits one message as CreateUnsuppressedMessages does
// (same rows, same errors: ErrSuppressedRecipient with nothing written,
// ErrIdempotencyLost), finishing idem in the same transaction when it is
// not nil, but written together with messages committed concurrently by
// other callers. It returns once msg is committed or has failed; the
// failure of another message in the group never fails this one.
func (s *Store) CommitMessage(ctx context.Context, msg NewMessage, idem *IdempotencyResult) error {
	return s.groups.commit(ctx, msg, idem)
}

func (g *grouper) commit(ctx context.Context, msg NewMessage, idem *IdempotencyResult) error {
	r := &commitRequest{msg: msg, idem: idem, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	lead := g.active < g.maxActive
	if lead {
		g.active++
	}
	g.mu.Unlock()
	if lead {
		g.writeNext(context.WithoutCancel(ctx))
	}
	return <-r.done
}

// writeNext holds one writer slot: it writes the next group, then hands
// the slot on to a new goroutine when more requests are waiting (so that
// its own caller answers without waiting for them), or gives it back.
func (g *grouper) writeNext(ctx context.Context) {
	g.mu.Lock()
	group := g.takeLocked()
	if len(group) == 0 {
		g.active--
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.write(ctx, group)
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.active--
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	go g.writeNext(ctx)
}

// takeLocked removes up to maxGroup requests from the queue.
func (g *grouper) takeLocked() []*commitRequest {
	n := min(len(g.queue), g.maxGroup)
	group := make([]*commitRequest, n)
	copy(group, g.queue)
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return group
}

// write commits group in one transaction. When that fails (a suppressed
// recipient, a lost idempotency key, a duplicate id…) nothing was written,
// and each request is committed on its own so that it gets its own result.
func (g *grouper) write(ctx context.Context, group []*commitRequest) {
	if len(group) > 1 {
		msgs := make([]NewMessage, len(group))
		var idems []*IdempotencyResult
		for i, r := range group {
			msgs[i] = r.msg
			if r.idem != nil {
				idems = append(idems, r.idem)
			}
		}
		if err := g.store.createMessages(ctx, newCheckedBatch(), msgs, idems); err == nil {
			for _, r := range group {
				r.done <- nil
			}
			return
		}
	}
	for _, r := range group {
		r.done <- g.store.createMessages(ctx, newCheckedBatch(), []NewMessage{r.msg}, idemList(r.idem))
	}
}
