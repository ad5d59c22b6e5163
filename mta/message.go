package mta

import (
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
)

// Address is a mailbox. Name may be empty; Email is local@domain with the
// domain already in A-label (punycode) form.
type Address struct {
	// Name is the display name, any UTF-8 (RFC 2047 encoded when needed).
	Name string
	// Email is the addr-spec, local@domain.
	Email string
}

// Attachment is a file carried by the message.
type Attachment struct {
	// Filename is the file name shown to the reader (UTF-8 allowed).
	Filename string
	// ContentType is the "type/subtype" media type, e.g. "application/pdf".
	ContentType string
	// Content is the decoded file content; Build encodes it in base64.
	Content []byte
	// ContentID, when set, makes the attachment an inline part of the HTML
	// body, referenced there as "cid:ContentID" (RFC 2392). Angle brackets
	// are optional. Without an HTML body it is an ordinary attachment.
	ContentID string
}

// Message is everything Build needs to produce one email. Bcc recipients
// are not part of it: they never appear in any header.
type Message struct {
	// ID is the mailgate message id; it becomes the X-Mailgate-ID header
	// and the Message-ID <ID@from-domain>. Required.
	ID string
	// From is the author. Required.
	From Address
	// ReplyTo is the optional Reply-To mailbox.
	ReplyTo *Address
	// To and Cc are the visible recipients; either may be empty.
	To, Cc []Address
	// Subject is any UTF-8 text (RFC 2047 encoded when needed).
	Subject string
	// Text and HTML are the bodies; either, both or neither may be set.
	Text, HTML string
	// Headers are custom header fields, already validated by the API
	// (RFC 5322 names, no reserved names, no CR or LF). Written in
	// name order.
	Headers map[string]string
	// Attachments are written after the bodies; those with a ContentID go
	// into a multipart/related part with the HTML.
	Attachments []Attachment
	// Date is the Date header (RFC 5322 §3.6.1). Required: the caller owns
	// the clock.
	Date time.Time
	// FeedbackID is the whole Feedback-ID header value, e.g.
	// "order:myproject:mailgate", or "" for none.
	FeedbackID string
}

// validateMessage checks what Build relies on. The API validates requests
// fully; this is the defence against header injection and missing fields
// that would produce a broken message.
func validateMessage(m *Message) error {
	switch {
	case m == nil:
		return errors.New("nil message")
	case m.ID == "" || strings.ContainsAny(m.ID, "<>@ \t\r\n\x00"):
		return fmt.Errorf("message id %q is empty or not a valid id-left (RFC 5322 §3.6.4)", m.ID)
	case !strings.Contains(m.From.Email, "@"):
		return fmt.Errorf("from address %q has no domain", m.From.Email)
	case m.Date.IsZero():
		return errors.New("message date is not set")
	}
	if err := checkHeaderValues(m); err != nil {
		return err
	}
	for i, a := range m.Attachments {
		if err := checkAttachment(a); err != nil {
			return fmt.Errorf("attachment %d: %w", i, err)
		}
	}
	return nil
}

// checkHeaderValues refuses CR, LF and NUL in every value that becomes a
// header field.
func checkHeaderValues(m *Message) error {
	values := map[string]string{"subject": m.Subject, "feedback id": m.FeedbackID}
	addrs := append([]Address{m.From}, m.To...)
	addrs = append(addrs, m.Cc...)
	if m.ReplyTo != nil {
		addrs = append(addrs, *m.ReplyTo)
	}
	for _, a := range addrs {
		values["address "+a.Email] = a.Name + a.Email
	}
	for k, v := range m.Headers {
		if k == "" || strings.ContainsAny(k, ": \t") {
			return fmt.Errorf("header name %q is not a field name (RFC 5322 §3.6.8)", k)
		}
		values["header "+k] = k + v
	}
	for what, v := range values {
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("%s: %w", what, errHeaderValue)
		}
	}
	return nil
}

func checkAttachment(a Attachment) error {
	if strings.ContainsAny(a.Filename+a.ContentType+a.ContentID, "\r\n\x00") {
		return errHeaderValue
	}
	if a.Filename == "" {
		return errors.New("filename is empty")
	}
	if _, _, err := mime.ParseMediaType(a.ContentType); err != nil || !strings.Contains(a.ContentType, "/") {
		return fmt.Errorf("content type %q is not type/subtype", a.ContentType)
	}
	return nil
}
