package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// MessageRequest is the body of POST /v1/messages and each item of a
// batch (docs/architecture.md "Message JSON"). ValidateMessage checks it.
type MessageRequest struct {
	// From is the sender mailbox, "addr" or "Name <addr>". Required.
	From string `json:"from"`
	// To, Cc and Bcc are recipient mailboxes; at least one overall. Bcc
	// recipients never appear in the headers.
	To  []string `json:"to,omitempty"`
	Cc  []string `json:"cc,omitempty"`
	Bcc []string `json:"bcc,omitempty"`
	// ReplyTo is an optional mailbox for the Reply-To header.
	ReplyTo string `json:"reply_to,omitempty"`
	// Subject may be empty.
	Subject string `json:"subject"`
	// Text and HTML are the bodies; at least one is required.
	Text string `json:"text,omitempty"`
	HTML string `json:"html,omitempty"`
	// Headers are custom header fields, name → value; reserved names are
	// refused.
	Headers map[string]string `json:"headers,omitempty"`
	// Attachments are files; one with a ContentID is inline.
	Attachments []AttachmentRequest `json:"attachments,omitempty"`
	// Tags label the message for filtering.
	Tags []string `json:"tags,omitempty"`
	// Metadata is flat client data echoed in events and webhooks.
	Metadata map[string]string `json:"metadata,omitempty"`
	// SendAt is an RFC 3339 time to send at; empty means now. Parsed by
	// ValidateMessage.
	SendAt string `json:"send_at,omitempty"`
}

// AttachmentRequest is one attachment of a MessageRequest.
type AttachmentRequest struct {
	// Filename is the file's name. Required.
	Filename string `json:"filename"`
	// ContentType is "type/subtype", without parameters. Required.
	ContentType string `json:"content_type"`
	// Content is the file in standard base64 (RFC 4648 §4), padding
	// required, no white space. May be empty.
	Content string `json:"content"`
	// ContentID, without "<>", makes the attachment inline
	// (multipart/related, RFC 2387), referenced as cid:ID.
	ContentID string `json:"content_id,omitempty"`
}

// ErrMalformedJSON is returned (wrapped, with the position) by
// DecodeMessageRequest when the body is not one JSON object: a syntax
// error, trailing data, or another JSON value. The caller answers 400.
var ErrMalformedJSON = errors.New("malformed JSON")

// DecodeMessageRequest decodes one JSON object strictly: unknown fields,
// trailing data and values of the wrong type are errors. A body that is
// not one JSON object returns an error wrapping ErrMalformedJSON. Type
// errors and unknown fields return every bad field as a FieldError whose
// Field is a JSON Pointer into body ("/to/0", "/bogus"); the caller may
// prefix them (for a batch item, "/messages/3"). As with encoding/json,
// member names match case-insensitively, a later duplicate wins and null
// leaves a field empty.
//
// A body with exact member names is decoded once by the fast path
// (decodeExact); others by a json.Decoder (which holds a copy of the body
// meanwhile, so peak memory is about twice the body plus the decoded
// strings); only a body with bad fields is decoded once more,
// generically, to name every bad field.
func DecodeMessageRequest(body []byte) (*MessageRequest, []FieldError, error) {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, fmt.Errorf("%w: the body must be a JSON object", ErrMalformedJSON)
	}
	var req MessageRequest
	if decodeExact(body, &req) == nil {
		return &req, nil, nil
	}
	return decodeMessageRequestV1(body)
}

// decodeMessageRequestV1 is DecodeMessageRequest with encoding/json alone.
func decodeMessageRequestV1(body []byte) (*MessageRequest, []FieldError, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req MessageRequest
	err := dec.Decode(&req)
	if err == nil {
		end := dec.InputOffset()
		if _, err := dec.Token(); err != io.EOF {
			return nil, nil, fmt.Errorf("%w: trailing data after the object at byte %d", ErrMalformedJSON, end)
		}
		return &req, nil, nil
	}
	if syn := (*json.SyntaxError)(nil); errors.As(err, &syn) {
		return nil, nil, fmt.Errorf("%w: at byte %d: %w", ErrMalformedJSON, syn.Offset, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: unexpected end of input", ErrMalformedJSON)
	}
	if fes := messageFieldErrors(body); len(fes) > 0 {
		return nil, fes, nil
	}
	return nil, repeatedMemberError(err), nil
}

// repeatedMemberError names the field of a type error that the generic
// walk did not see: that happens only when a member name is repeated and
// encoding/json refused an earlier value that a later one replaced.
func repeatedMemberError(err error) []FieldError {
	field := ""
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Field != "" {
		field = "/" + strings.ReplaceAll(te.Field, ".", "/")
	}
	return []FieldError{{Field: field, Message: "has a value of the wrong type (is a member name repeated?)"}}
}

// messageFieldErrors decodes a syntactically valid body generically and
// names every member that encoding/json refused, in field order (unknown
// members last, by name).
func messageFieldErrors(body []byte) []FieldError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		ia, ib := messageFieldIndex(a), messageFieldIndex(b)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	var fes []FieldError
	for _, k := range keys {
		fes = append(fes, messageMemberErrors("/"+pointerToken(k), messageFieldIndex(k), obj[k])...)
	}
	return fes
}

// messageFieldIndex is the position of key among MessageRequest's JSON
// names, matched as encoding/json does (case-insensitively); unknown keys
// sort after all of them.
func messageFieldIndex(key string) int {
	names := [...]string{"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html",
		"headers", "attachments", "tags", "metadata", "send_at"}
	for i, name := range names {
		if strings.EqualFold(key, name) {
			return i
		}
	}
	return len(names)
}

// messageMemberErrors checks one member's value against the type of the
// field at index i of messageFieldIndex.
func messageMemberErrors(ptr string, i int, v any) []FieldError {
	switch i {
	case 1, 2, 3, 10: // to, cc, bcc, tags
		return stringArrayErrors(ptr, v)
	case 8, 11: // headers, metadata
		return stringMapErrors(ptr, v)
	case 9:
		return attachmentArrayErrors(ptr, v)
	case 13:
		return []FieldError{{Field: ptr, Message: "unknown field"}}
	}
	return stringValueErrors(ptr, v)
}

// stringValueErrors accepts a string or null.
func stringValueErrors(ptr string, v any) []FieldError {
	if _, ok := v.(string); ok || v == nil {
		return nil
	}
	return []FieldError{{Field: ptr, Message: "must be a string"}}
}

// stringArrayErrors accepts null or an array of strings (or nulls).
func stringArrayErrors(ptr string, v any) []FieldError {
	if v == nil {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		return []FieldError{{Field: ptr, Message: "must be an array of strings"}}
	}
	var fes []FieldError
	for i, item := range arr {
		fes = append(fes, stringValueErrors(ptr+"/"+strconv.Itoa(i), item)...)
	}
	return fes
}

// stringMapErrors accepts null or an object of strings (or nulls), keys
// sorted.
func stringMapErrors(ptr string, v any) []FieldError {
	if v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []FieldError{{Field: ptr, Message: "must be an object with string values"}}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var fes []FieldError
	for _, k := range keys {
		fes = append(fes, stringValueErrors(ptr+"/"+pointerToken(k), obj[k])...)
	}
	return fes
}

// attachmentArrayErrors accepts null or an array of attachment objects
// (or nulls).
func attachmentArrayErrors(ptr string, v any) []FieldError {
	if v == nil {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		return []FieldError{{Field: ptr, Message: "must be an array of objects"}}
	}
	var fes []FieldError
	for i, item := range arr {
		fes = append(fes, attachmentObjectErrors(ptr+"/"+strconv.Itoa(i), item)...)
	}
	return fes
}

// attachmentObjectErrors checks one attachment object's members in field
// order, unknown members last.
func attachmentObjectErrors(ptr string, v any) []FieldError {
	if v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []FieldError{{Field: ptr, Message: "must be an object"}}
	}
	index := func(key string) int {
		for i, name := range [...]string{"filename", "content_type", "content", "content_id"} {
			if strings.EqualFold(key, name) {
				return i
			}
		}
		return 4
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := index(a) - index(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var fes []FieldError
	for _, k := range keys {
		kp := ptr + "/" + pointerToken(k)
		if index(k) == 4 {
			fes = append(fes, FieldError{Field: kp, Message: "unknown field"})
			continue
		}
		fes = append(fes, stringValueErrors(kp, obj[k])...)
	}
	return fes
}
