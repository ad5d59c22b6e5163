package store

import "context"

// commitRequest is one CommitMessage call waiting for its group
// (batcher.go).
type commitRequest struct {
	msg  NewMessage
	idem *IdempotencyResult
	done chan error // buffered: the writer never blocks on it
}

// CommitMessage commits one message as CreateUnsuppressedMessages does
// (same rows, same errors: ErrSuppressedRecipient with nothing written,
// ErrIdempotencyLost), finishing idem in the same transaction when it is
// not nil, but written together with messages committed concurrently by
// other callers. It returns once msg is committed or has failed; the
// failure of another message in the group never fails this one.
func (s *Store) CommitMessage(ctx context.Context, msg NewMessage, idem *IdempotencyResult) error {
	r := &commitRequest{msg: msg, idem: idem, done: make(chan error, 1)}
	s.commits.submit(ctx, r)
	return <-r.done
}

// writeCommits commits group in one transaction. When that fails (a suppressed
// recipient, a lost idempotency key, a duplicate id…) nothing was written,
// and each request is committed on its own so that it gets its own result.
func (s *Store) writeCommits(ctx context.Context, group []*commitRequest) {
	if len(group) > 1 {
		msgs := make([]NewMessage, len(group))
		var idems []*IdempotencyResult
		for i, r := range group {
			msgs[i] = r.msg
			if r.idem != nil {
				idems = append(idems, r.idem)
			}
		}
		if err := s.createMessages(ctx, newCheckedBatch(), msgs, idems); err == nil {
			for _, r := range group {
				r.done <- nil
			}
			return
		}
	}
	for _, r := range group {
		r.done <- s.createMessages(ctx, newCheckedBatch(), []NewMessage{r.msg}, idemList(r.idem))
	}
}
