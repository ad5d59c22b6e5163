package store

import (
	"context"
)

// commitRequest is one CommitMessage call waiting for its group
// (batcher.go).
type commitRequest struct {
	msg  NewMessage
	idem *IdempotencyResult
	done chan commitDone // buffered: the writer never blocks on it
}

// commitDone is a CommitMessage call's answer.
type commitDone struct {
	res Created
	err error
}

// CommitMessage commits one message as CreateMessages does (same rows,
// same errors), finishing idem in the same transaction when it is not nil,
// but written together with the messages committed concurrently by other
// callers: the messages of one group that are to be sent now share a
// batch (Created.BatchID; the caller whose Created has Batch enqueues its
// task). It returns once msg is committed or has failed. The failure of
// another message in the group never fails this one, except when the
// database is unavailable: then the whole group fails (it may even have
// committed, ErrCommitUnknown) and is not written again message by
// message.
func (s *Store) CommitMessage(ctx context.Context, msg NewMessage, idem *IdempotencyResult) (Created, error) {
	r := &commitRequest{msg: msg, idem: idem, done: make(chan commitDone, 1)}
	s.commits.submit(ctx, r)
	d := <-r.done
	return d.res, d.err
}

// writeCommits commits group in one transaction. When that fails for one
// of its messages (a lost idempotency key, a duplicate id…) nothing was
// written, and each request is committed on its own, without a batch, so
// that it gets its own result.
func (s *Store) writeCommits(ctx context.Context, group []*commitRequest) {
	msgs := make([]NewMessage, len(group))
	var keys []keyFinish
	for i, r := range group {
		msgs[i] = r.msg
		if r.idem != nil {
			keys = append(keys, keyFinish{idem: r.idem, from: i, to: i + 1})
		}
	}
	created, err := s.createGroup(ctx, msgs, keys)
	if err == nil || len(group) == 1 || IsUnavailable(err) {
		for i, r := range group {
			d := commitDone{err: err}
			if err == nil {
				d.res = created[i]
			}
			r.done <- d
		}
		return
	}
	for _, r := range group {
		var d commitDone
		var keys []keyFinish
		if r.idem != nil {
			keys = []keyFinish{{idem: r.idem, from: 0, to: 1}}
		}
		created, d.err = s.createGroup(ctx, []NewMessage{r.msg}, keys)
		if d.err == nil {
			d.res = created[0]
		}
		r.done <- d
	}
}
