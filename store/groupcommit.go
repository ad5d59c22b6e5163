package store

import "context"

// commitRequest is one CommitMessage call waiting for its group
// (batcher.go).
type commitRequest struct {
	msg  NewMessage
	idem *IdempotencyResult
	done chan commitDone // buffered: the writer never blocks on it
}

// commitDone is a CommitMessage call's answer.
type commitDone struct {
	res CommitResult
	err error
}

// CommitResult tells a CommitMessage caller how its message is to be sent.
type CommitResult struct {
	// BatchID is set when the message was committed in a group with other
	// messages to be sent now: one batch send task (task id BatchID) makes
	// the first attempt at all of them.
	BatchID string
	// Batch is set for one message of such a group only (the first): the
	// ids of the group's messages, for its caller to enqueue the batch's
	// task. The other callers enqueue nothing.
	Batch []string
}

// CommitMessage commits one message as CreateUnsuppressedMessages does
// (same rows, same errors: ErrSuppressedRecipient with nothing written,
// ErrIdempotencyLost), finishing idem in the same transaction when it is
// not nil, but written together with messages committed concurrently by
// other callers. It returns once msg is committed or has failed; the
// failure of another message in the group never fails this one. Messages
// of one group that are to be sent now share a batch (CommitResult); a
// message committed alone has none. msg.BatchID is ignored.
func (s *Store) CommitMessage(ctx context.Context, msg NewMessage, idem *IdempotencyResult) (CommitResult, error) {
	msg.BatchID = ""
	r := &commitRequest{msg: msg, idem: idem, done: make(chan commitDone, 1)}
	s.commits.submit(ctx, r)
	d := <-r.done
	return d.res, d.err
}

// writeCommits commits group in one transaction. When that fails (a suppressed
// recipient, a lost idempotency key, a duplicate id…) nothing was written,
// and each request is committed on its own, without a batch, so that it
// gets its own result.
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
		results := groupBatch(msgs)
		if err := s.createMessages(ctx, newCheckedBatch(), msgs, idems); err == nil {
			for i, r := range group {
				r.done <- commitDone{res: results[i]}
			}
			return
		}
	}
	for _, r := range group {
		r.done <- commitDone{err: s.createMessages(ctx, newCheckedBatch(), []NewMessage{r.msg}, idemList(r.idem))}
	}
}

// groupBatch puts the messages of msgs that are to be sent now (no
// send_at, a recipient queued) in one batch when there are at least two,
// setting their BatchID, and returns each message's CommitResult.
func groupBatch(msgs []NewMessage) []CommitResult {
	results := make([]CommitResult, len(msgs))
	var members []int
	var ids []string
	for i, m := range msgs {
		if sendsNow(m) {
			members, ids = append(members, i), append(ids, m.ID)
		}
	}
	if len(members) < 2 {
		return results
	}
	id := BatchID(ids[0])
	for _, i := range members {
		msgs[i].BatchID = id
		results[i].BatchID = id
	}
	results[members[0]].Batch = ids
	return results
}

// sendsNow reports whether m is to be sent now: no send_at, and its
// status (from its recipients') is queued.
func sendsNow(m NewMessage) bool {
	if m.SendAt != nil {
		return false
	}
	statuses := make([]string, len(m.Recipients))
	for i, r := range m.Recipients {
		statuses[i] = r.Status
	}
	return SummarizeStatus(statuses) == StatusQueued
}
