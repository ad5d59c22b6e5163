package store

import (
	"context"
	"time"
)

// Delivery writes go through one writer (batcher.go, Store.deliveries):
// concurrent starts and outcomes are written together, a group in one
// transaction, so a busy worker pays one commit for many calls instead of
// one each (20,000 single-recipient messages took about 3,000 commits
// instead of 12,081). A group of one is written by the same code.
//
// When a group fails as a whole (one call's bad row) each of its calls is
// written again on its own, so one call's failure is never another's.
// Except when the database is unavailable (IsUnavailable): every call is
// then answered with the error at once, and the worker writes an outcome
// again itself (and a start's task runs again later). A COMMIT whose
// outcome is unknown may have committed the group: an outcome written
// again changes nothing (only recipients still sending change), but a
// start that did commit would count a second attempt; the task's next run
// finds its recipients sending instead and flags the message possibly
// duplicated although nothing was sent, which errs on the safe side.
//
// A group's write is bounded by groupTimeout, so a database that stops
// answering (a network black hole) holds the one writer for that long at
// most.
const groupTimeout = time.Minute

// writeDeliveries is the delivery writer's run: it writes group and
// answers each call.
func (s *Store) writeDeliveries(ctx context.Context, group []deliveryOp) {
	err := s.writeGroup(ctx, group)
	if err == nil || len(group) == 1 || IsUnavailable(err) {
		for _, op := range group {
			op.answer(err)
		}
		return
	}
	for _, op := range group {
		op.answer(s.writeGroup(ctx, []deliveryOp{op}))
	}
}

// writeGroup writes ops in one transaction, setting each call's result.
func (s *Store) writeGroup(ctx context.Context, ops []deliveryOp) error {
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	if s.dialect == DialectPostgres {
		return s.writeGroupPostgres(ctx, ops)
	}
	return s.writeGroupSQLite(ctx, ops)
}

// answer hands the call its result, or err when its group failed.
func (op deliveryOp) answer(err error) {
	if op.start != nil {
		if err != nil {
			op.start.d, op.start.out, op.start.err = Delivery{}, AttemptStart{}, err
		}
		close(op.start.done)
		return
	}
	if err != nil {
		op.outcome.err = err
	}
	close(op.outcome.done)
}
