package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits are the send limits (docs/architecture.md "Limits"). A zero or negative
// field takes the default given in its comment (see WithDefaults).
// "Characters" are Unicode code points.
type Limits struct {
	// MaxRecipients caps the distinct addresses across to, cc and bcc.
	// Default 50.
	MaxRecipients int
	// MaxSubject is the longest subject in characters. Default 998.
	MaxSubject int
	// MaxHeaderName is the longest custom header name. Default 76.
	MaxHeaderName int
	// MaxHeaderValue is the longest custom header value (and content_id)
	// in characters. Default 998.
	MaxHeaderValue int
	// MaxTags caps the number of tags. Default 10.
	MaxTags int
	// MaxTagLength is the longest tag in characters. Default 128.
	MaxTagLength int
	// MaxMetadataKeys caps the number of metadata keys. Default 50.
	MaxMetadataKeys int
	// MaxMetadataKey is the longest metadata key in characters. Default 64.
	MaxMetadataKey int
	// MaxMetadataValue is the longest metadata value in characters.
	// Default 1000.
	MaxMetadataValue int
	// MaxMessageBytes caps text + html + decoded attachments, in bytes.
	// Default 25 MiB (25*1024*1024).
	MaxMessageBytes int64
	// MaxScheduleAhead is how far in the future send_at may be.
	// Default 30 days.
	MaxScheduleAhead time.Duration
}

// WithDefaults returns l with every zero or negative field set to its
// default.
func (l Limits) WithDefaults() Limits {
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&l.MaxRecipients, 50)
	setInt(&l.MaxSubject, 998)
	setInt(&l.MaxHeaderName, 76)
	setInt(&l.MaxHeaderValue, 998)
	setInt(&l.MaxTags, 10)
	setInt(&l.MaxTagLength, 128)
	setInt(&l.MaxMetadataKeys, 50)
	setInt(&l.MaxMetadataKey, 64)
	setInt(&l.MaxMetadataValue, 1000)
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = 25 * 1024 * 1024
	}
	if l.MaxScheduleAhead <= 0 {
		l.MaxScheduleAhead = 30 * 24 * time.Hour
	}
	return l
}

// ValidMessage is a MessageRequest that passed validation, normalised.
// The request's other fields are valid as they stand and are used as is.
type ValidMessage struct {
	// From is the parsed sender.
	From Address
	// ReplyTo is the parsed reply_to, nil when absent.
	ReplyTo *Address
	// Recipients are the distinct recipients (compared case-insensitively
	// on the whole address) in the order to, cc, bcc; the first
	// occurrence of an address wins.
	Recipients []ValidRecipient
	// SendAt is the scheduled time in UTC, nil to send now.
	SendAt *time.Time
	// Size is text + html + decoded attachments, in bytes.
	Size int64
}

// ValidRecipient is one distinct recipient and the list it came from.
type ValidRecipient struct {
	Address
	// Kind is "to", "cc" or "bcc".
	Kind string
}

// ErrTooLarge is returned (wrapped) by ValidateMessage when text + html +
// decoded attachments exceed Limits.MaxMessageBytes: the caller answers 413.
var ErrTooLarge = errors.New("message too large")

// sendAtSlack is how close to now a send_at may be and still mean "now":
// such a message is sent immediately (ValidMessage.SendAt nil).
const sendAtSlack = time.Second

// ValidateMessage checks req against lim (defaults applied) at time now.
// prefix is prepended to every FieldError.Field ("" for a single message,
// "/messages/3" for a batch item).
//
// It returns the normalised message; or every bad field it finds in one
// pass, in the order of the struct's fields (map keys sorted); or an error
// wrapping ErrTooLarge. The size is checked first from the lengths alone,
// so an oversized message is refused without decoding its attachments and
// without field errors. Recipients past the limit are not examined.
func ValidateMessage(req *MessageRequest, lim Limits, now time.Time, prefix string) (*ValidMessage, []FieldError, error) {
	lim = lim.WithDefaults()
	if size := estimateMessageSize(req); size > lim.MaxMessageBytes {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, lim.MaxMessageBytes)
	}
	c := &messageCheck{lim: lim, now: now, prefix: prefix}
	vm := &ValidMessage{}
	if c.hasFrom(req) {
		vm.From, _ = c.address("/from", req.From)
	}
	if c.hasRecipient(req) {
		vm.Recipients = c.recipients(req)
	}
	if req.ReplyTo != "" {
		if a, ok := c.address("/reply_to", req.ReplyTo); ok {
			vm.ReplyTo = &a
		}
	}
	c.subject(req.Subject)
	c.hasBody(req)
	c.headers(req.Headers)
	vm.Size = int64(len(req.Text)) + int64(len(req.HTML)) + c.attachments(req.Attachments)
	c.tags(req.Tags)
	c.metadata(req.Metadata)
	vm.SendAt = c.sendAt(req.SendAt)
	if len(c.errs) > 0 {
		return nil, c.errs, nil
	}
	if vm.Size > lim.MaxMessageBytes { // only when the estimate was off
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, vm.Size, lim.MaxMessageBytes)
	}
	return vm, nil, nil
}

// messageCheck collects the FieldErrors of one ValidateMessage call.
type messageCheck struct {
	lim    Limits
	now    time.Time
	prefix string
	errs   []FieldError
}

// add records a problem with the field at JSON pointer ptr (RFC 6901),
// relative to the message.
func (c *messageCheck) add(ptr, msg string) {
	c.errs = append(c.errs, FieldError{Field: c.prefix + ptr, Message: msg})
}

// missingFields names the required fields req lacks: from, a recipient
// (to, cc or bcc) and text or html, as ValidateMessage does. The contract
// requires only from (the others are a choice among fields), so a request
// refused by the contract gets these added, naming every missing field at
// once; prefix is prepended to each Field.
func missingFields(req *MessageRequest, prefix string) []FieldError {
	c := &messageCheck{prefix: prefix}
	c.hasFrom(req)
	c.hasRecipient(req)
	c.hasBody(req)
	return c.errs
}

// hasFrom requires from.
func (c *messageCheck) hasFrom(req *MessageRequest) bool {
	if req.From == "" {
		c.add("/from", "is required")
		return false
	}
	return true
}

// hasRecipient requires at least one address in to, cc or bcc.
func (c *messageCheck) hasRecipient(req *MessageRequest) bool {
	if len(req.To)+len(req.Cc)+len(req.Bcc) == 0 {
		c.add("/to", "at least one recipient is required")
		return false
	}
	return true
}

// hasBody requires text or html.
func (c *messageCheck) hasBody(req *MessageRequest) {
	if req.Text == "" && req.HTML == "" {
		c.add("/text", "text or html is required")
	}
}

// address parses s, recording the parse error at ptr.
func (c *messageCheck) address(ptr, s string) (Address, bool) {
	a, err := ParseAddress(s)
	if err != nil {
		c.add(ptr, err.Error())
		return Address{}, false
	}
	return a, true
}

// recipients parses to, cc and bcc in that order and merges duplicates.
// The list holding the first address past MaxRecipients gets the error,
// and the addresses after it are not examined.
func (c *messageCheck) recipients(req *MessageRequest) []ValidRecipient {
	out := make([]ValidRecipient, 0, min(len(req.To)+len(req.Cc)+len(req.Bcc), c.lim.MaxRecipients))
	lists := [...]struct {
		kind string
		list []string
	}{{"to", req.To}, {"cc", req.Cc}, {"bcc", req.Bcc}}
	for _, l := range lists {
		for i, s := range l.list {
			a, ok := c.address("/"+l.kind+"/"+strconv.Itoa(i), s)
			if !ok || containsRecipient(out, a.Email) {
				continue
			}
			if len(out) == c.lim.MaxRecipients {
				c.add("/"+l.kind, fmt.Sprintf("at most %d distinct recipients are allowed across to, cc and bcc", c.lim.MaxRecipients))
				return out
			}
			out = append(out, ValidRecipient{Address: a, Kind: l.kind})
		}
	}
	return out
}

// containsRecipient reports whether email is already in rs, ignoring
// case. A linear scan: rs holds at most MaxRecipients entries.
func containsRecipient(rs []ValidRecipient, email string) bool {
	for _, r := range rs {
		if strings.EqualFold(r.Email, email) {
			return true
		}
	}
	return false
}

// sendAt parses send_at (RFC 3339 §5.6) and keeps it within
// (now, now+MaxScheduleAhead]. A time before now is refused; one less than
// sendAtSlack ahead means "send now" and yields nil.
func (c *messageCheck) sendAt(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		c.add("/send_at", "must be an RFC 3339 date-time such as 2026-12-01T09:00:00Z")
		return nil
	}
	ahead := t.Sub(c.now)
	switch {
	case ahead < 0:
		c.add("/send_at", "must be in the future")
		return nil
	case ahead > c.lim.MaxScheduleAhead:
		c.add("/send_at", "must be at most "+durationText(c.lim.MaxScheduleAhead)+" ahead")
		return nil
	case ahead < sendAtSlack:
		return nil
	}
	t = t.UTC()
	return &t
}

// durationText writes whole days as "30 days", anything else as Go does.
func durationText(d time.Duration) string {
	const day = 24 * time.Hour
	if d%day == 0 {
		if d == day {
			return "1 day"
		}
		return strconv.FormatInt(int64(d/day), 10) + " days"
	}
	return d.String()
}
