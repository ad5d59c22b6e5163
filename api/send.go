package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/store"
)

// idempotencyHeader is Stripe's header name; its value is ≤ 255 characters.
const idempotencyHeader = "Idempotency-Key"

// accepted is a validated message ready to commit and, once committed,
// what the store created for it.
type accepted struct {
	msg     store.NewMessage
	created store.Created
	// warnings are told to the client with the answer.
	warnings []string
}

// view is the answer the client gets for a committed message.
func (a accepted) view() acceptedView {
	v := acceptedView{ID: a.msg.ID, Status: a.created.Status, Recipients: make([]acceptedRecipientView, len(a.msg.Recipients)),
		Warnings: a.warnings}
	for i, r := range a.msg.Recipients {
		v.Recipients[i] = acceptedRecipientView{Email: r.Email, Status: a.created.Recipients[i]}
	}
	return v
}

// sendMessage is POST /v1/messages: validate, claim the idempotency key,
// check the sender, commit (the store checks suppressions), enqueue,
// answer 202. Nothing is answered 202 before the commit.
func (s *Server) sendMessage(c echo.Context) error {
	// Once the body is read the request runs to its end: a client that
	// hangs up must not leave a claimed key or a committed message unqueued.
	ctx := context.WithoutCancel(c.Request().Context())
	body, err := readBody(c)
	if err != nil {
		return err
	}
	req, vm, err := s.validateOne(body, "")
	if err != nil {
		return err
	}
	claim, replay, err := s.claimIdempotency(c, req)
	if err != nil || replay {
		return err
	}
	acc, err := s.commitOne(ctx, caller(c), req, vm, claim)
	if err != nil {
		claim.release(ctx)
		return err
	}
	out, err := json.Marshal(acc.view())
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	s.afterCommit(ctx, acc)
	return c.JSONBlob(http.StatusAccepted, out)
}

// commitOne checks the sender domain and commits one message, finishing
// claim with the 202 body in the same transaction.
func (s *Server) commitOne(ctx context.Context, key store.APIKey, req *MessageRequest, vm *ValidMessage, claim idemClaim) (accepted, error) {
	warning, err := s.checkSenderDomain(ctx, key.ProjectID, vm, "")
	if err != nil {
		return accepted{}, err
	}
	acc, err := s.prepare(key, req, vm, warning)
	if err != nil {
		return accepted{}, err
	}
	acc.created, err = s.deps.Store.CommitMessage(ctx, acc.msg, claim.result(func(cs []store.Created) (int, []byte, error) {
		b, err := json.Marshal(accepted{msg: acc.msg, created: cs[0], warnings: acc.warnings}.view())
		return http.StatusAccepted, b, err
	}))
	if err != nil {
		return accepted{}, fmt.Errorf("commit message: %w", err)
	}
	return acc, nil
}

// readBody returns the request body (the validator left it readable).
func readBody(c echo.Context) ([]byte, error) {
	b, err := bodyBytes(c.Request())
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, tooLargeProblem("the request body is over the size limit")
		}
		return nil, malformedProblem("the request body could not be read")
	}
	return b, nil
}

// missingMessageFields is missingFields of a POST /v1/messages body the
// contract refused. The body is decoded leniently (unknown members
// ignored, a value of the wrong type left empty) because the contract
// names those already; a body that is not a JSON object adds nothing.
func missingMessageFields(body []byte) []FieldError {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil
	}
	var req MessageRequest
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(body, &req); err != nil && !errors.As(err, &typeErr) {
		return nil
	}
	return missingFields(&req, "")
}

// validateOne decodes and validates one message; prefix is prepended to
// the field pointers of its errors.
func (s *Server) validateOne(raw []byte, prefix string) (*MessageRequest, *ValidMessage, error) {
	req, ferrs, err := DecodeMessageRequest(raw)
	if err != nil {
		return nil, nil, malformedProblem(err.Error())
	}
	if len(ferrs) > 0 {
		return nil, nil, validationProblem(prefixed(prefix, ferrs))
	}
	vm, ferrs, err := ValidateMessage(req, s.cfg.Limits, s.cfg.Now(), prefix)
	if errors.Is(err, ErrTooLarge) {
		return nil, nil, tooLargeProblem(fmt.Sprintf("text, html and attachments exceed %d bytes", s.cfg.Limits.MaxMessageBytes))
	}
	if err != nil {
		return nil, nil, err
	}
	if len(ferrs) > 0 {
		return nil, nil, validationProblem(ferrs)
	}
	return req, vm, nil
}

func prefixed(prefix string, errs []FieldError) []FieldError {
	if prefix == "" {
		return errs
	}
	out := make([]FieldError, len(errs))
	for i, e := range errs {
		out[i] = FieldError{Field: prefix + e.Field, Message: e.Message}
	}
	return out
}

// senderCheck is the verdict on a project's From domain: it may send
// (with a warning, maybe), or refusal says why not.
type senderCheck struct {
	// warning is told to the client in the 202 answer ("" for none).
	warning string
	// refusal, when not "", is the 422's message naming the domain.
	refusal string
}

// checkSenderDomain checks the From domain of a message and returns the
// warning its send carries (""), or the 422 naming the from field (under
// prefix).
func (s *Server) checkSenderDomain(ctx context.Context, projectID string, vm *ValidMessage, prefix string) (string, error) {
	sc, err := s.senderDomain(ctx, projectID, vm.From.Domain)
	if err != nil {
		return "", err
	}
	return s.senderDomainVerdict(sc, prefix)
}

// senderDomain decides whether the project may send from domain, which
// no other project may have verified: then a domain the project
// registered that is verified, or, in development mode only, pending or
// failed (signed as usual, with a warning); or one it has not registered
// that is in AllowedSenderDomains (unsigned). A positive verdict is cached
// (domainCache), so a send costs one map lookup; a miss is one store
// lookup.
func (s *Server) senderDomain(ctx context.Context, projectID, domain string) (senderCheck, error) {
	var epoch uint64
	if s.domains != nil {
		warning, ok, e := s.domains.sendable(projectID, domain)
		if ok {
			return senderCheck{warning: warning}, nil
		}
		epoch = e
	}
	sd, err := s.deps.Store.SenderDomain(ctx, projectID, domain)
	if err != nil {
		return senderCheck{}, fmt.Errorf("check sender domain: %w", err)
	}
	sc := s.judgeSenderDomain(domain, sd)
	if sc.refusal != "" {
		return sc, nil
	}
	if sc.warning != "" {
		// Logged once per cache fill (per TTL and replica), not per send.
		s.deps.Log.Warn("sending from an unverified sender domain (development mode)",
			"project_id", projectID, "domain", domain, "status", sd.Status)
	}
	if s.domains != nil {
		s.domains.put(projectID, domain, sc.warning, epoch)
	}
	return sc, nil
}

// judgeSenderDomain is senderDomain's rule applied to what the store said.
func (s *Server) judgeSenderDomain(domain string, sd store.SenderDomain) senderCheck {
	switch {
	case sd.VerifiedElsewhere:
		return senderCheck{refusal: fmt.Sprintf("sender domain %s is verified by another project; "+
			"this project cannot send from it", domain)}
	case !sd.Registered && s.allowed[domain]:
		return senderCheck{}
	case !sd.Registered:
		return senderCheck{refusal: fmt.Sprintf("sender domain %s is not registered for this project", domain)}
	case sd.Status == store.DomainVerified:
		return senderCheck{}
	}
	publish := fmt.Sprintf("publish its DKIM record (%s, listed in GET /v1/domains/%s) and run POST /v1/domains/%s/verify",
		dkimRecordNames(domain, sd.Selectors), domain, domain)
	if s.cfg.Production {
		return senderCheck{refusal: fmt.Sprintf("sender domain %s is not verified (status %s): %s", domain, sd.Status, publish)}
	}
	return senderCheck{warning: fmt.Sprintf("sender domain %s is not verified (status %s): sent, signed, because "+
		"this server runs in development mode; production mode refuses it until you %s", domain, sd.Status, publish)}
}

// dkimRecordNames lists the DKIM record names of the selectors, "TXT
// a._domainkey.shop.example or TXT b._domainkey.shop.example".
func dkimRecordNames(domain string, selectors []string) string {
	if len(selectors) == 0 {
		return "TXT <selector>._domainkey." + domain
	}
	names := make([]string, len(selectors))
	for i, sel := range selectors {
		names[i] = "TXT " + sel + "._domainkey." + domain
	}
	return strings.Join(names, " or ")
}

// senderDomainVerdict is the warning of a sendable domain, else the 422
// naming the from field (under prefix).
func (s *Server) senderDomainVerdict(sc senderCheck, prefix string) (string, error) {
	if sc.refusal != "" {
		return "", senderDomainProblem(prefix+"/from", sc.refusal)
	}
	return sc.warning, nil
}

// prepare builds the message and its recipients, each queued, or
// scheduled for a message with send_at (the store writes those on the
// suppression list as suppressed); warning ("" for none) goes with the
// answer.
func (s *Server) prepare(key store.APIKey, req *MessageRequest, vm *ValidMessage, warning string) (accepted, error) {
	payload, err := encodePayload(req)
	if err != nil {
		return accepted{}, err
	}
	msg := store.NewMessage{
		ID: s.cfg.NewID(), ProjectID: key.ProjectID, KeyID: key.ID,
		From: req.From, FromDomain: vm.From.Domain, Subject: req.Subject,
		Tags: req.Tags, Metadata: req.Metadata, SendAt: vm.SendAt,
		Payload: payload, CreatedAt: s.cfg.Now(),
	}
	status := store.StatusQueued
	if vm.SendAt != nil {
		status = store.StatusScheduled
	}
	for _, r := range vm.Recipients {
		msg.Recipients = append(msg.Recipients, store.NewRecipient{Email: r.Email, Kind: r.Kind, Status: status})
	}
	acc := accepted{msg: msg}
	if warning != "" {
		acc.warnings = []string{warning}
	}
	return acc, nil
}

// encodePayload is the stored form of req: its JSON without the bodies,
// and the bodies as they are.
func encodePayload(req *MessageRequest) (store.Payload, error) {
	head := *req
	head.Text, head.HTML = "", ""
	b, err := json.Marshal(&head)
	if err != nil {
		return store.Payload{}, fmt.Errorf("encode payload: %w", err)
	}
	return store.Payload{Request: b, Text: req.Text, HTML: req.HTML}, nil
}

// afterCommit enqueues the send task and counts the message. A failed
// enqueue is logged and left to the reconciler: the message is committed.
func (s *Server) afterCommit(ctx context.Context, acc accepted) {
	s.metrics.accepted.WithLabelValues(s.projectName(ctx, acc.msg.ProjectID), acc.msg.FromDomain).Inc()
	if acc.created.Status != store.StatusQueued && acc.created.Status != store.StatusScheduled {
		return
	}
	if acc.created.BatchID != "" {
		s.enqueueBatch(ctx, acc.created.BatchID, acc.created.Batch)
		return
	}
	var at time.Time // zero: process now, whatever the clocks of Redis and this host say
	if acc.msg.SendAt != nil {
		at = *acc.msg.SendAt
	}
	if err := s.deps.Queue.EnqueueSend(ctx, acc.msg.ID, at); err != nil {
		s.metrics.enqueueFailures.Inc()
		s.deps.Log.Warn("enqueue after commit failed; the reconciler will retry",
			"message_id", acc.msg.ID, "err", err)
	}
}

// requestHash fingerprints a request for Idempotency-Key comparison: the
// route and the canonical JSON of the decoded body, so whitespace and key
// order do not matter.
func requestHash(route string, req any) []byte {
	b, _ := json.Marshal(req)
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}
