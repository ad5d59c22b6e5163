package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// problemType is the base of the "type" URI of every problem mailgate
// answers; the suffix names the problem.
const problemType = "https://mailgate.dev/problems/"

// FieldError names one bad field of a request body.
type FieldError struct {
	// Field is a JSON Pointer (RFC 6901) into the request body, such as
	// "/to/0" or "/headers/X-Order".
	Field string `json:"field"`
	// Message says what is wrong, in plain English.
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem detail. Handlers return it as an error;
// the error handler in this file is the only place that writes it.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
	// Challenge, when set, is sent as the WWW-Authenticate header
	// (RFC 9110 §11.6.1): the scheme a 401's client must authenticate with.
	Challenge string `json:"-"`
	// reason, when set, is the reason label a refused send counts under
	// (metrics.countRejected) instead of the one its type maps to.
	reason string
}

// Error implements error.
func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// newProblem builds a problem; slug becomes the last part of its type URI.
func newProblem(status int, slug, title, detail string) *Problem {
	return &Problem{Type: problemType + slug, Title: title, Status: status, Detail: detail}
}

// validationProblem is the 422 answer naming every bad field.
func validationProblem(errs []FieldError) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "validation", "Invalid request",
		"the request body has invalid fields; see errors")
	p.Errors = errs
	return p
}

// senderDomainProblem is the 422 answer for a From domain the project may
// not send from; field is the JSON Pointer of the from field, message says
// why, naming the domain. It counts as a rejection for reason
// sender_domain, not validation.
func senderDomainProblem(field, message string) *Problem {
	p := validationProblem([]FieldError{{Field: field, Message: message}})
	p.reason = "sender_domain"
	return p
}

// malformedProblem is the 400 answer for a body that is not the JSON asked for.
func malformedProblem(detail string) *Problem {
	return newProblem(http.StatusBadRequest, "malformed", "Malformed request", detail)
}

// tooLargeProblem is the 413 answer for a body over the size limit.
func tooLargeProblem(detail string) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, "too-large", "Request too large", detail)
}

// unavailableProblem is the 503 answer for a dependency (the database,
// Redis) that is unavailable; the client retries after retryAfterSeconds.
func unavailableProblem(detail string) *Problem {
	p := newProblem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)
	p.RetryAfter = retryAfterSeconds
	return p
}

// retryAfterSeconds is the Retry-After of a 503.
const retryAfterSeconds = 5

func notFoundProblem(what string) *Problem {
	return newProblem(http.StatusNotFound, "not-found", "Not found", what+" not found")
}

// feedbackProblem is the answer to a provider notification that does not
// verify: 401 when it carries no credentials (with a Basic challenge for
// Postmark, whose webhook URL carries them), 400 when it is not the
// provider's shape, 503 when the SNS certificate cannot be fetched now (SNS
// retries), else 403.
func feedbackProblem(provider string, err error) *Problem {
	switch {
	case errors.Is(err, feedback.ErrUnauthenticated):
		p := newProblem(http.StatusUnauthorized, "feedback-unauthenticated", "Unauthenticated notification",
			"the notification carries no "+provider+" signature or credentials")
		if provider == feedback.ProviderPostmark {
			p.Challenge = `Basic realm="mailgate feedback"`
		}
		return p
	case errors.Is(err, feedback.ErrMalformed):
		return malformedProblem("the body is not a " + provider + " notification")
	case errors.Is(err, feedback.ErrCertUnavailable):
		return unavailableProblem("the SNS signing certificate could not be fetched; retry later")
	}
	return newProblem(http.StatusForbidden, "feedback-refused", "Notification refused",
		"the notification does not verify: "+feedback.Reason(err))
}

// problemFor maps any error a handler returns to the problem the client
// sees. A database or Redis that cannot serve is a 503 with Retry-After
// (the request may succeed later); a COMMIT whose outcome is unknown too,
// telling the client to retry with the same Idempotency-Key, whose replay
// then says what happened. Errors that are not ours become a 500 without
// internals.
func problemFor(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return httpErrorProblem(he)
	}
	switch {
	case errors.Is(err, store.ErrCommitUnknown):
		return unavailableProblem("the connection to the database was lost while the request was being committed, " +
			"so it may have been accepted; retry with the same Idempotency-Key to get its answer " +
			"(without one, check whether it was accepted before sending it again)")
	case store.IsUnavailable(err):
		return unavailableProblem("the database is unavailable; retry later, with the same Idempotency-Key if the request had one")
	case errors.Is(err, ratelimit.ErrUnavailable):
		return unavailableProblem("the rate limits (Redis) are unavailable; retry later")
	case errors.Is(err, feedback.ErrTokensUnavailable):
		return unavailableProblem("the replay check of provider notifications (Redis) is unavailable; retry later")
	case errors.Is(err, store.ErrNotFound):
		return notFoundProblem("resource")
	case errors.Is(err, store.ErrConflict):
		return newProblem(http.StatusConflict, "conflict", "Conflict", "the resource already exists")
	case errors.Is(err, store.ErrIdempotencyLost):
		return newProblem(http.StatusConflict, "idempotency-in-flight", "Request in progress",
			"another request took over this Idempotency-Key; retry to get its answer")
	case errors.Is(err, store.ErrNotCancellable):
		return newProblem(http.StatusConflict, "not-cancellable", "Not cancellable",
			"the message has no recipient left that can be cancelled")
	}
	return newProblem(http.StatusInternalServerError, "internal", "Internal error",
		"the server could not complete the request; it was logged")
}

func httpErrorProblem(he *echo.HTTPError) *Problem {
	switch he.Code {
	case http.StatusNotFound:
		return newProblem(he.Code, "not-found", "Not found", "no such route")
	case http.StatusMethodNotAllowed:
		return newProblem(he.Code, "method-not-allowed", "Method not allowed", "the route does not take this method")
	case http.StatusRequestEntityTooLarge:
		return tooLargeProblem("the request body is over the size limit")
	case http.StatusUnsupportedMediaType:
		return newProblem(he.Code, "unsupported-media-type", "Unsupported media type", "send application/json")
	}
	return newProblem(he.Code, "http", http.StatusText(he.Code), fmt.Sprint(he.Message))
}

// errorHandler is echo's HTTPErrorHandler: every error leaves as
// application/problem+json, and a refused send is counted (m may be nil:
// nothing is counted).
func errorHandler(log *slog.Logger, m *metrics) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problemFor(err)
		if p.Status >= 500 {
			log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
		}
		if m != nil && isSend(c) {
			m.countRejected(p)
		}
		if m != nil && p.Status == http.StatusRequestEntityTooLarge {
			// Over the route's limit or the server's (BodyLimit, refused
			// before the handler runs): counted here, where both arrive.
			m.countFeedbackTooLarge(c)
		}
		writeProblem(c, p)
	}
}

// writeProblem writes p as the response.
func writeProblem(c echo.Context, p *Problem) {
	if p.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", fmt.Sprint(p.RetryAfter))
	}
	if p.Challenge != "" {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, p.Challenge)
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	_ = jsonEncode(c.Response(), p)
}
