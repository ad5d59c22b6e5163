package api

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// headerTextProblem checks a value that ends up in a message header: CR,
// LF and NUL would let a client inject header lines or end the header
// block (RFC 5322 §2.2), so they get their own message; other control
// characters (C0, DEL, C1) are refused too, except a horizontal tab when
// allowTab (a tab is white space in unstructured header text).
func headerTextProblem(s string, allowTab bool) string {
	if strings.ContainsAny(s, "\r\n\x00") {
		return msgInjection
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(allowTab && r == '\t') {
			return msgControl
		}
	}
	return ""
}

// subject checks the subject: it may be empty (as with other providers),
// is unstructured header text, and at most MaxSubject characters.
func (c *messageCheck) subject(s string) {
	if msg := headerTextProblem(s, true); msg != "" {
		c.add("/subject", msg)
		return
	}
	if utf8.RuneCountInString(s) > c.lim.MaxSubject {
		c.add("/subject", fmt.Sprintf("must be at most %d characters", c.lim.MaxSubject))
	}
}

// headers checks the custom headers in sorted name order, one error per
// header at "/headers/NAME".
func (c *messageCheck) headers(h map[string]string) {
	if len(h) == 0 {
		return
	}
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		msg := c.headerNameProblem(name)
		if lower := strings.ToLower(name); msg == "" && seen[lower] {
			msg = "duplicate header name (names are case-insensitive)"
		} else {
			seen[lower] = true
		}
		if msg == "" {
			msg = c.headerValueProblem(h[name])
		}
		if msg == "" && namesMailgateID(name, h[name]) {
			msg = "the mailgate_id variable is set by mailgate and cannot be given"
		}
		if msg != "" {
			c.add("/headers/"+pointerToken(name), msg)
		}
	}
}

// headerNameProblem checks a field name (RFC 5322 §3.6.8: printable
// US-ASCII except ':'), its length and the reserved names.
func (c *messageCheck) headerNameProblem(name string) string {
	if name == "" {
		return "header name must not be empty"
	}
	if strings.ContainsAny(name, "\r\n\x00") {
		return msgInjection
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 33 || name[i] > 126 || name[i] == ':' {
			return "header name must be printable ASCII without spaces or ':' (RFC 5322 §3.6.8)"
		}
	}
	if len(name) > c.lim.MaxHeaderName {
		return fmt.Sprintf("header name must be at most %d characters", c.lim.MaxHeaderName)
	}
	if isReservedHeader(name) {
		return "header is set by mailgate and cannot be given"
	}
	return ""
}

// headerValueProblem checks a custom header value (unstructured text).
func (c *messageCheck) headerValueProblem(v string) string {
	if msg := headerTextProblem(v, true); msg != "" {
		return msg
	}
	if utf8.RuneCountInString(v) > c.lim.MaxHeaderValue {
		return fmt.Sprintf("header value must be at most %d characters", c.lim.MaxHeaderValue)
	}
	return ""
}

// isReservedHeader reports whether mailgate sets the header itself
// (docs/architecture.md "Limits", plus Reply-To, Sender and Feedback-ID), ignoring
// case; any Content-* and X-Mailgate-* name is reserved.
func isReservedHeader(name string) bool {
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "content-") || strings.HasPrefix(lower, "x-mailgate-") {
		return true
	}
	switch lower {
	case "from", "to", "cc", "bcc", "subject", "date", "message-id", "dkim-signature",
		"return-path", "mime-version", "received", "reply-to", "sender", "feedback-id",
		"x-pm-metadata-mailgate_id": // the relay's copy of the id for Postmark (package mta)
		return true
	}
	return false
}

// namesMailgateID reports whether a custom header gives the relay
// provider's copy of the message id (mta's feedback header): SendGrid's
// X-SMTPAPI or Mailgun's X-Mailgun-Variables holding a mailgate_id, which
// would tie that provider's notifications to another message.
func namesMailgateID(name, value string) bool {
	switch strings.ToLower(name) {
	case "x-smtpapi", "x-mailgun-variables":
		return strings.Contains(strings.ToLower(value), "mailgate_id")
	}
	return false
}

// pointerToken escapes one reference token of a JSON Pointer (RFC 6901 §3):
// "~" becomes "~0" and "/" becomes "~1".
func pointerToken(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
