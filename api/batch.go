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
	var br batchRequest
	if err := json.Unmarshal(body, &br); err != nil {
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
	msgs := make([]store.NewMessage, len(accs))
	for i, a := range accs {
		msgs[i] = a.msg
	}
	if err := s.deps.Store.CreateMessages(ctx, msgs, claim.result(http.StatusOK, out)); err != nil {
		claim.release(ctx)
		return fmt.Errorf("commit batch: %w", err)
	}
	for _, a := range accs {
		s.afterCommit(ctx, a)
	}
	return c.JSONBlob(http.StatusOK, out)
}

// admitBatch validates and admits each item on its own.
func (s *Server) admitBatch(ctx context.Context, key store.APIKey, items []json.RawMessage) ([]batchResult, []accepted) {
	results := make([]batchResult, len(items))
	var accs []accepted
	for i, raw := range items {
		results[i].Index = i
		acc, err := s.admitItem(ctx, key, raw, "/messages/"+strconv.Itoa(i))
		if err != nil {
			results[i].Error = problemFor(err)
			if results[i].Error.Status >= 500 {
				s.deps.Log.Error("batch item", "index", i, "err", err)
			}
			continue
		}
		results[i].ID, results[i].Status, results[i].Recipients = acc.view.ID, acc.view.Status, acc.view.Recipients
		accs = append(accs, acc)
	}
	return results, accs
}

func (s *Server) admitItem(ctx context.Context, key store.APIKey, raw json.RawMessage, prefix string) (accepted, error) {
	req, vm, err := s.validateOne(raw, prefix)
	if err != nil {
		return accepted{}, err
	}
	return s.admit(ctx, key, req, vm, prefix)
}
