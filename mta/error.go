package mta

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// Error is the one outcome type of an SMTP send that did not end in 2xx.
// Pool.Send and Relays.Send return it (as error) and nothing else.
type Error struct {
	// Permanent is true for a 5xx reply (RFC 5321 §4.2.1) and for a relay
	// whose TLS or AUTH requirements cannot be met (Config). Retrying the
	// same message on the same relay will not help.
	Permanent bool
	// Code is the SMTP reply code, or 0 when the server gave no reply
	// (network error, timeout, refused TLS, cancelled context).
	Code int
	// Enhanced is the RFC 3463 enhanced status code ("5.1.1"), or "" when
	// the reply carried none.
	Enhanced string
	// Text is the server's reply text, or a description of the local
	// failure. It never contains a password.
	Text string
	// Ambiguous is true when the whole message and the final dot were sent
	// but no reply came back (RFC 5321 §4.1.1.4, §6.1): the relay may have
	// accepted the message. Such an error is not Permanent.
	Ambiguous bool
	// Config is true when the relay cannot be used as configured: STARTTLS
	// not offered, a certificate that does not verify, AUTH not offered or
	// refused, SMTPUTF8 needed but not offered. No mail transaction was
	// started. Relays fails over to the next relay on such an error.
	Config bool
	// Cause is the underlying error (a *smtp.SMTPError, a net.Error, a
	// context error, a TLS error), if any.
	Cause error

	// stale marks a MAIL FROM on a reused connection that found the
	// connection closed by the server; the pool retries on a new one.
	stale bool
}

// Error formats the outcome as "smtp 550 5.1.1: text",
// "smtp network error: text" or "smtp relay not usable as configured: text".
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Code != 0:
		fmt.Fprintf(&b, "smtp %d", e.Code)
	case e.Config:
		b.WriteString("smtp relay not usable as configured")
	case e.Permanent:
		b.WriteString("smtp")
	default:
		b.WriteString("smtp network error")
	}
	if e.Enhanced != "" {
		b.WriteString(" " + e.Enhanced)
	}
	if e.Ambiguous {
		b.WriteString(" (no reply to the final dot: possibly delivered)")
	}
	if e.Text != "" {
		b.WriteString(": " + e.Text)
	}
	return b.String()
}

// Unwrap returns Cause.
func (e *Error) Unwrap() error { return e.Cause }

// CodeClass is the metrics label of the outcome: "4xx", "5xx" or "network"
// (no reply code).
func (e *Error) CodeClass() string {
	switch {
	case e.Code >= 500:
		return "5xx"
	case e.Code >= 400:
		return "4xx"
	default:
		return "network"
	}
}

// CodeClass is the metrics label for the result of a send: "2xx" for nil,
// else the class of the *Error inside err ("network" when err is not one).
func CodeClass(err error) string {
	if err == nil {
		return "2xx"
	}
	var e *Error
	if errors.As(err, &e) {
		return e.CodeClass()
	}
	return "network"
}

// replyError turns a server reply into an *Error (RFC 5321 §4.2.1: 4yz is
// transient, 5yz permanent).
func replyError(se *smtp.SMTPError) *Error {
	e := &Error{
		Permanent: se.Code >= 500,
		Code:      se.Code,
		Text:      se.Message,
		Cause:     se,
	}
	if c := se.EnhancedCode; c != smtp.NoEnhancedCode && c[0] != 0 {
		e.Enhanced = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
	}
	return e
}

// networkError is a failure without a reply: transient unless ambiguous
// handling is decided by the caller.
func networkError(step string, err error) *Error {
	return &Error{Text: step + ": " + err.Error(), Cause: err}
}

// configError is a relay that cannot be used as configured.
func configError(text string, cause error) *Error {
	if cause != nil {
		text += ": " + cause.Error()
	}
	return &Error{Permanent: true, Config: true, Text: text, Cause: cause}
}

// asError classifies err from step: a server reply keeps its code, anything
// else is a network error.
func asError(step string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return replyError(se)
	}
	return networkError(step, err)
}
