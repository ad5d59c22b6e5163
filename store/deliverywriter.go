package store

import (
	"context"
	"errors"
)

// Delivery writes go through one writer (batcher.go, Store.deliveries):
// concurrent starts and outcomes are written together, a group in one
// transaction, so a busy worker pays one commit for many calls instead of
// one each (20,000 single-recipient messages took about 3,000 commits
// instead of 12,081). A group of one is written by the same code.
//
// When a group fails as a whole (a deadlock, a lost connection, one
// call's bad row) each of its calls is written again on its own, so one
// call's failure is never another's. Except after ErrCommitUnknown, when
// the group may have been committed: an outcome is then written again (it
// changes only recipients still sending, so a second write of the same
// outcome changes nothing), but a start is answered with the error. A
// start written twice would count a second attempt and find its own
// recipients sending, flagging a message possibly duplicated that nothing
// was sent for yet; answered with the error, the caller's task runs again
// later and its start sorts out what is there.

// writeDeliveries is the delivery writer's run: it writes group and
// answers each call.
func (s *Store) writeDeliveries(ctx context.Context, group []deliveryOp) {
	err := s.writeGroup(ctx, group)
	if err == nil || len(group) == 1 {
		for _, op := range group {
			op.answer(err)
		}
		return
	}
	for _, op := range group {
		if op.start != nil && errors.Is(err, ErrCommitUnknown) {
			op.answer(err)
			continue
		}
		op.answer(s.writeGroup(ctx, []deliveryOp{op}))
	}
}

// writeGroup writes ops in one transaction, setting each call's result.
func (s *Store) writeGroup(ctx context.Context, ops []deliveryOp) error {
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
