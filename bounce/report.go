package bounce

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Kinds of Report. The JSON field "kind" carries one of these values.
const (
	// KindBounce is a failed delivery (a DSN with Action failed, or a
	// non-standard bounce).
	KindBounce = "bounce"
	// KindDelayed is a delivery delay notice (DSN Action delayed); the
	// message may still be delivered.
	KindDelayed = "delayed"
	// KindDelivered is a success DSN (Action delivered, relayed or
	// expanded).
	KindDelivered = "delivered"
	// KindComplaint is a feedback-loop report (RFC 5965 ARF) or an
	// unsubscribe notice sent on the user's behalf.
	KindComplaint = "complaint"
	// KindAutoReply is an automatic answer (out of office, vacation; RFC
	// 3834).
	KindAutoReply = "auto_reply"
	// KindReply is a person answering one of our messages.
	KindReply = "reply"
	// KindUnknown is anything else: newsletters, spam, forwards, mail that
	// answers nothing.
	KindUnknown = "unknown"
)

// Report is what Parse makes of one returned message. Its JSON form is what
// `mailgate inspect` prints.
type Report struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Results holds one entry per recipient the message reports on, in the
	// order the report lists them. It is never nil (JSON []) so that
	// consumers can range over it; replies and unknown mail have none.
	Results []Result `json:"results"`
	// FeedbackType is the ARF Feedback-Type (RFC 5965 §3.1: abuse, fraud,
	// opt-out, auth-failure, virus, other, ...) for complaints.
	FeedbackType string `json:"feedback_type,omitempty"`
	// Refs is what the message points at, to tie it to the message we sent.
	Refs Refs `json:"refs"`
	// Reply is set for kinds reply and auto_reply.
	Reply *Reply `json:"reply,omitempty"`
}

// Result is the outcome for one recipient.
type Result struct {
	// Recipient is the original recipient the result is about (RFC 3464
	// §2.3.2 Final-Recipient, or the address found in the text of a
	// non-standard bounce). For complaints it is the complaining address,
	// for auto-replies the address that answered.
	Recipient string `json:"recipient"`
	// Action is the DSN action (RFC 3464 §2.3.3): failed, delayed,
	// delivered, relayed or expanded. Empty when the report has none.
	Action string `json:"action,omitempty"`
	// Status is the RFC 3463 status code "class.subject.detail". When the
	// report carries none it is derived from the reason ("5.0.0" class
	// only when nothing better is known). Empty for complaints and
	// auto-replies.
	Status string `json:"status"`
	// ReplyCode is the SMTP reply code (RFC 5321 §4.2) the remote server
	// answered, e.g. 550; 0 when unknown.
	ReplyCode int `json:"reply_code,omitempty"`
	// Diagnostic is the remote server's or reporting MTA's explanation,
	// on one line.
	Diagnostic string `json:"diagnostic,omitempty"`
	// RemoteMTA is the host that gave the answer, when known.
	RemoteMTA string `json:"remote_mta,omitempty"`
	// Reason is one of the Reason constants (see reasons.go).
	Reason string `json:"reason"`
	// Hard reports that the address itself is bad (see IsHard): such a
	// bounce suppresses the address at once. Always present in JSON.
	Hard bool `json:"hard"`
	// Rule is the stable id of the rule that decided Reason and Hard (see
	// Report.Explain): "diagnostic:REASON:PHRASE" and "notice:REASON:PHRASE"
	// for a phrase of the built-in table found in the diagnostic or the
	// notice text, "status:X.Y.Z" for the status code (by a built-in
	// status rule; X.Y.Z is the result's code), "command:mail",
	// "command:helo", "action:delayed", "action:delivered",
	// "reply-code:syntax", "local-mailer", "recipient:googlegroups",
	// "ses:SUBTYPE" (an Amazon SES bounce subtype), "category:NAME" (the
	// reporting MTA's bounce category, PowerMTA's), "arf",
	// "auto-reply", "fallback:onhold", "fallback:undefined", or an
	// operator rule's id ("operator:LINE" unless the file names it): a
	// phrase rule, or a status rule whose meaning of the code decided.
	Rule string `json:"rule,omitempty"`
	// Overrides is the id of the built-in rule whose decision an operator
	// rule (Rule) replaced: the built-in decision for a phrase rule (the
	// built-in "status:X.Y.Z" an operator status rule replaced first, when
	// one did), the built-in "status:X.Y.Z" for a status rule; empty when the built-in
	// rules decided or a status rule gave a code the built-in rules leave
	// without meaning.
	Overrides string `json:"overrides,omitempty"`
}

// Refs is what a returned message points at.
type Refs struct {
	// VERPToken is TOKEN from a b+TOKEN@domain address found in the
	// Delivered-To, X-Original-To, Envelope-To or To headers of the
	// message, the Original-Mail-From of an ARF report (RFC 5965 §3.2),
	// or the Return-Path of the returned original. It is not verified
	// here.
	VERPToken string `json:"verp_token,omitempty"`
	// MailgateID is the X-Mailgate-ID header of the returned original.
	MailgateID string `json:"mailgate_id,omitempty"`
	// OriginalMessageID is the Message-ID of the returned original
	// (without angle brackets).
	OriginalMessageID string `json:"original_message_id,omitempty"`
	// InReplyTo is the first message id of the In-Reply-To header
	// (without angle brackets).
	InReplyTo string `json:"in_reply_to,omitempty"`
	// References lists the message ids of the References header, oldest
	// first (without angle brackets).
	References []string `json:"references,omitempty"`
}

// Reply describes a human reply or an auto-reply.
type Reply struct {
	// From is the sender's address (addr-spec only).
	From string `json:"from"`
	// Subject is the decoded Subject header.
	Subject string `json:"subject"`
	// Text is the decoded text of the answer with the quoted history,
	// the "-- " signature block and mobile footers removed; the sign-off
	// is kept.
	Text string `json:"text"`
}

// JSON returns the report as indented JSON, with Results never null.
func (r *Report) JSON() ([]byte, error) {
	c := *r
	if c.Results == nil {
		c.Results = []Result{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // diagnostics quote <addresses>; keep them legible
	enc.SetIndent("", "  ")
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
