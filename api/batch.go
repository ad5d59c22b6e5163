package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/store"
)

// maxBatch is the most messages one batch request may hold.
const maxBatch = 500

// batchRequest is the body of POST /v1/messages/batch. Items stay raw so
// that a bad item fails alone.
type batchRequest struct {
	Messages []json.RawMessage `json:"messages"`
}

// decodeBatch splits a batch body into its items, by the fast path when
// it can (decodeExact).
func decodeBatch(body []byte) (batchRequest, error) {
	var br batchRequest
	if decodeExact(body, &br) == nil {
		return br, nil
	}
	br = batchRequest{}
	err := json.Unmarshal(body, &br)
	return br, err
}

// batchResult is one item of the batch answer: the accepted message, or
// the problem that refused it.
type batchResult struct {
	Index      int                     `json:"index"`
	ID         string                  `json:"id,omitempty"`
	Status     string                  `json:"status,omitempty"`
	Recipients []acceptedRecipientView `json:"recipients,omitempty"`
	Error      *Problem                `json:"error,omitempty"`
}

// sendBatch is POST /v1/messages/batch: every good item is committed in one
// transaction and enqueued; every bad item gets its own problem.
func (s *Server) sendBatch(c echo.Context) error {
	// Once the body is read the request runs to its end: a client that
	// hangs up must not leave a claimed key or a committed message unqueued.
	ctx := context.WithoutCancel(c.Request().Context())
	body, err := readBody(c)
	if err != nil {
		return err
	}
	br, err := decodeBatch(body)
	if err != nil {
		return malformedProblem("the body must be {\"messages\": [ … ]}")
	}
	if len(br.Messages) == 0 || len(br.Messages) > maxBatch {
		return validationProblem([]FieldError{{Field: "/messages",
			Message: fmt.Sprintf("must hold between 1 and %d messages", maxBatch)}})
	}
	claim, replay, err := s.claimIdempotency(c, br)
	if err != nil || replay {
		return err
	}
	results, accs := s.admitBatch(ctx, caller(c), br.Messages)
	out, err := json.Marshal(struct {
		Results []batchResult `json:"results"`
	}{results})
	if err != nil {
		claim.release(ctx)
		return fmt.Errorf("encode response: %w", err)
	}
	batchID, batched := assignBatch(accs)
	msgs := make([]store.NewMessage, len(accs))
	for i, a := range accs {
		msgs[i] = a.msg
	}
	if err := s.deps.Store.CreateMessages(ctx, msgs, claim.result(http.StatusOK, out)); err != nil {
		claim.release(ctx)
		return fmt.Errorf("commit batch: %w", err)
	}
	s.afterBatchCommit(ctx, accs, batchID, batched)
	return c.JSONBlob(http.StatusOK, out)
}

// assignBatch gives the messages of accs that are to be sent now (queued,
// no send_at) one batch send task, when there are at least two of them:
// their BatchID is set and their ids are returned. One task for a whole
// batch costs Redis three round trips instead of three per message; the
// messages it cannot finish at the first attempt get tasks of their own.
func assignBatch(accs []accepted) (string, []string) {
	var ids []string
	for _, a := range accs {
		if sendsNow(a) {
			ids = append(ids, a.msg.ID)
		}
	}
	if len(ids) < 2 {
		return "", nil
	}
	batchID := store.BatchID(ids[0])
	for i := range accs {
		if sendsNow(accs[i]) {
			accs[i].msg.BatchID = batchID
		}
	}
	return batchID, ids
}

// sendsNow reports whether a message is queued for sending now.
func sendsNow(a accepted) bool {
	return a.view.Status == store.StatusQueued && a.msg.SendAt == nil
}

// afterBatchCommit counts the messages, enqueues the tasks of those
// outside the batch, then the batch's task. A failed enqueue is logged and
// left to the reconciler (which enqueues the batch's task again, not one
// per message).
func (s *Server) afterBatchCommit(ctx context.Context, accs []accepted, batchID string, batched []string) {
	for _, a := range accs {
		s.afterCommit(ctx, a) // a message of the batch: counted only
	}
	s.enqueueBatch(ctx, batchID, batched)
}

// enqueueBatch enqueues the task of batch batchID when ids (its messages)
// is not empty: for concurrent POST /v1/messages committed together, only
// the first message's request has them. A failed enqueue is logged and
// left to the reconciler.
func (s *Server) enqueueBatch(ctx context.Context, batchID string, ids []string) {
	if batchID == "" || len(ids) == 0 {
		return
	}
	if err := s.deps.Queue.EnqueueSendBatch(ctx, batchID, ids); err != nil {
		s.metrics.enqueueFailures.Add(float64(len(ids)))
		s.deps.Log.Warn("enqueue of a batch after commit failed; the reconciler will retry",
			"batch_id", batchID, "messages", len(ids), "err", err)
	}
}

// admitBatch validates and prepares every item. The store is asked once
// per sender domain and once for the suppressions of all the items'
// recipients, not once per item.
func (s *Server) admitBatch(ctx context.Context, key store.APIKey, items []json.RawMessage) ([]batchResult, []accepted) {
	results := make([]batchResult, len(items))
	domains := map[string]bool{}
	var valid []validItem
	var emails []string
	for i, raw := range items {
		results[i].Index = i
		prefix := "/messages/" + strconv.Itoa(i)
		req, vm, err := s.validateOne(raw, prefix)
		if err == nil {
			err = s.checkSenderDomainOnce(ctx, key.ProjectID, vm, prefix, domains)
		}
		if err != nil {
			s.failItem(&results[i], err)
			continue
		}
		valid = append(valid, validItem{index: i, req: req, vm: vm})
		emails = append(emails, recipientEmails(vm)...)
	}
	suppressed, err := s.deps.Store.SuppressedAmong(ctx, key.ProjectID, emails)
	if err != nil {
		err = fmt.Errorf("check suppressions: %w", err)
	}
	var accs []accepted
	for _, v := range valid {
		var acc accepted
		if err == nil {
			acc, err = s.prepare(key, v.req, v.vm, suppressed)
		}
		if err != nil {
			s.failItem(&results[v.index], err)
			continue
		}
		r := &results[v.index]
		r.ID, r.Status, r.Recipients = acc.view.ID, acc.view.Status, acc.view.Recipients
		accs = append(accs, acc)
	}
	return results, accs
}

// validItem is a batch item that passed validation and the sender check.
type validItem struct {
	index int
	req   *MessageRequest
	vm    *ValidMessage
}

// failItem records an item's error (logging server-side ones).
func (s *Server) failItem(r *batchResult, err error) {
	r.Error = problemFor(err)
	if r.Error.Status >= 500 {
		s.deps.Log.Error("batch item", "index", r.Index, "err", err)
	}
}

// checkSenderDomainOnce is checkSenderDomain asking the store once per
// domain of a batch: seen holds the verdicts already looked up.
func (s *Server) checkSenderDomainOnce(ctx context.Context, projectID string, vm *ValidMessage, prefix string,
	seen map[string]bool) error {
	ok, found := seen[vm.From.Domain]
	if !found {
		var err error
		if ok, err = s.senderDomainAllowed(ctx, projectID, vm.From.Domain); err != nil {
			return err
		}
		seen[vm.From.Domain] = ok
	}
	return s.senderDomainVerdict(ok, vm, prefix)
}
