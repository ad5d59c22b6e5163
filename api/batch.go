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
	Warnings   []string                `json:"warnings,omitempty"`
	Error      *Problem                `json:"error,omitempty"`
}

// sendBatch is POST /v1/messages/batch: every good item is committed in one
// transaction and enqueued; every bad item gets its own problem. When an
// item could not be checked (the database or Redis failed), nothing is
// committed, the key is released and the whole request answers 503, so
// that a retry with the same Idempotency-Key runs again instead of
// replaying an outage.
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
	b, err := s.admitBatch(ctx, caller(c), br.Messages)
	if err != nil {
		claim.release(ctx)
		return err
	}
	created, err := s.deps.Store.CreateMessages(ctx, b.messages(), claim.result(b.respond))
	if err != nil {
		claim.release(ctx)
		return fmt.Errorf("commit batch: %w", err)
	}
	_, out, err := b.respond(created)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	for i := range b.accs {
		b.accs[i].created = created[i]
		s.afterCommit(ctx, b.accs[i]) // the first message of a batch enqueues its task
	}
	return c.JSONBlob(http.StatusOK, out)
}

// admitted is a batch request checked item by item: the messages to
// commit, and a result per item.
type admitted struct {
	results []batchResult
	accs    []accepted
	// index is, for each of accs, its item's index in results.
	index []int
}

// messages are the messages to commit.
func (b *admitted) messages() []store.NewMessage {
	msgs := make([]store.NewMessage, len(b.accs))
	for i, a := range b.accs {
		msgs[i] = a.msg
	}
	return msgs
}

// respond is the batch answer once the store created the messages
// (created: one per message of accs, in order).
func (b *admitted) respond(created []store.Created) (int, []byte, error) {
	for i, a := range b.accs {
		a.created = created[i]
		v := a.view()
		r := &b.results[b.index[i]]
		r.ID, r.Status, r.Recipients, r.Warnings = v.ID, v.Status, v.Recipients, v.Warnings
	}
	out, err := json.Marshal(struct {
		Results []batchResult `json:"results"`
	}{b.results})
	return http.StatusOK, out, err
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

// admitBatch validates and prepares every item, asking the store once per
// sender domain, not once per item. An item that could not be checked (a
// 5xx) fails the whole request with a 503.
func (s *Server) admitBatch(ctx context.Context, key store.APIKey, items []json.RawMessage) (*admitted, error) {
	b := &admitted{results: make([]batchResult, len(items))}
	domains := map[string]senderCheck{}
	for i, raw := range items {
		r := &b.results[i]
		r.Index = i
		prefix := "/messages/" + strconv.Itoa(i)
		req, vm, err := s.validateOne(raw, prefix)
		var warning string
		if err == nil {
			warning, err = s.checkSenderDomainOnce(ctx, key.ProjectID, vm, prefix, domains)
		}
		var acc accepted
		if err == nil {
			acc, err = s.prepare(key, req, vm, warning)
		}
		if err != nil {
			if s.failItem(r, err) {
				return nil, unavailableProblem("an item could not be checked; retry the request with the same Idempotency-Key")
			}
			continue
		}
		b.accs, b.index = append(b.accs, acc), append(b.index, i)
	}
	return b, nil
}

// failItem records an item's error, and reports (and logs) a
// server-side one.
func (s *Server) failItem(r *batchResult, err error) bool {
	r.Error = problemFor(err)
	if r.Error.Status < 500 {
		s.metrics.countRejected(r.Error) // inside a 200: the error handler never sees it
		return false
	}
	s.deps.Log.Error("batch item", "index", r.Index, "err", err)
	return true
}

// checkSenderDomainOnce is checkSenderDomain asking the store once per
// domain of a batch: seen holds the verdicts already looked up.
func (s *Server) checkSenderDomainOnce(ctx context.Context, projectID string, vm *ValidMessage, prefix string,
	seen map[string]senderCheck) (string, error) {
	sc, found := seen[vm.From.Domain]
	if !found {
		var err error
		if sc, err = s.senderDomain(ctx, projectID, vm.From.Domain); err != nil {
			return "", err
		}
		seen[vm.From.Domain] = sc
	}
	return s.senderDomainVerdict(sc, prefix)
}
