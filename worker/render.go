package worker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"golang.org/x/net/idna"

	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/store"
)

// payload is the request the API stored: api.MessageRequest's wire form
// (store.Payload's Request) with its text and HTML bodies. Bcc, Tags, Metadata and SendAt are not used here; they are named
// so that the fast decoder knows every member the API writes
// (decodePayload).
type payload struct {
	From        string            `json:"from"`
	To          []string          `json:"to"`
	Cc          []string          `json:"cc"`
	Bcc         []string          `json:"bcc"`
	ReplyTo     string            `json:"reply_to"`
	Subject     string            `json:"subject"`
	Text        string            `json:"text"`
	HTML        string            `json:"html"`
	Headers     map[string]string `json:"headers"`
	Attachments []struct {
		Filename    string `json:"filename"`
		ContentType string `json:"content_type"`
		Content     string `json:"content"`
		ContentID   string `json:"content_id"`
	} `json:"attachments"`
	Tags     []string          `json:"tags"`
	Metadata map[string]string `json:"metadata"`
	SendAt   string            `json:"send_at"`
}

// render builds the MIME message of a delivery and signs it with keys,
// the sender domain's (KeySource); a domain without keys (allowed by
// configuration but not registered) goes out unsigned, logged and counted.
func (d *Deliverer) render(dl store.Delivery, keys []mta.DKIMKey) ([]byte, error) {
	m, err := d.mimeMessage(dl, dl.Payload)
	if err != nil {
		return nil, err
	}
	raw, err := mta.Build(m)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if len(keys) == 0 {
		d.deps.Metrics.unsigned.WithLabelValues(dl.FromDomain).Inc()
		d.deps.Log.Warn("sending unsigned: the sender domain is not registered", "domain", dl.FromDomain, "message_id", dl.ID)
		return raw, nil
	}
	return d.deps.Signer.Sign(raw, keys)
}

// decodePayload reads the stored request: its JSON, then the bodies kept
// beside it as they are.
func decodePayload(stored store.Payload) (payload, error) {
	p, err := decodePayloadJSON(stored.Request)
	if err != nil {
		return payload{}, err
	}
	p.Text, p.HTML = stored.Text, stored.HTML
	return p, nil
}

// decodePayloadJSON reads the request JSON. The API wrote it with exact
// member names, each once, in valid UTF-8. The JSON v2 decoder, about
// three times faster than encoding/json on a 10 KB body, is strict in
// those three ways and refuses unknown members too; what it accepts,
// encoding/json reads the same. Anything else is read by encoding/json.
func decodePayloadJSON(b []byte) (payload, error) {
	var p payload
	if decodePayloadExact(b, &p) == nil {
		return p, nil
	}
	p = payload{}
	err := json.Unmarshal(b, &p)
	return p, err
}

// decodePayloadExact is decodePayloadJSON's fast path alone.
func decodePayloadExact(b []byte, p *payload) error {
	return jsonv2.Unmarshal(b, p, jsonv2.RejectUnknownMembers(true))
}

// mimeMessage turns the stored request into what mta.Build takes, dated
// now.
func (d *Deliverer) mimeMessage(dl store.Delivery, stored store.Payload) (*mta.Message, error) {
	return newMIMEMessage(dl, stored, d.cfg.Now())
}

// RebuildMIME builds a stored message as a send builds it, dated date and
// without the DKIM-Signature (the console's raw download). A send builds
// and signs the message again at each attempt, with that attempt's Date,
// MIME boundaries and signature time, so the bytes relayed are not kept;
// the headers, bodies and attachments are the same.
func RebuildMIME(m store.Message, stored store.Payload, date time.Time) ([]byte, error) {
	msg, err := newMIMEMessage(store.Delivery{ID: m.ID, ProjectID: m.ProjectID, Tags: m.Tags}, stored, date)
	if err != nil {
		return nil, err
	}
	raw, err := mta.Build(msg)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return raw, nil
}

// newMIMEMessage turns the stored request of dl into what mta.Build
// takes.
func newMIMEMessage(dl store.Delivery, stored store.Payload, date time.Time) (*mta.Message, error) {
	p, err := decodePayload(stored)
	if err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	m := &mta.Message{ID: dl.ID, Subject: p.Subject, Text: p.Text, HTML: p.HTML, Headers: p.Headers,
		Date: date, FeedbackID: feedbackID(dl)}
	if m.From, err = address(p.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if p.ReplyTo != "" {
		rt, err := address(p.ReplyTo)
		if err != nil {
			return nil, fmt.Errorf("reply_to: %w", err)
		}
		m.ReplyTo = &rt
	}
	if m.To, err = addresses(p.To); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	if m.Cc, err = addresses(p.Cc); err != nil {
		return nil, fmt.Errorf("cc: %w", err)
	}
	for _, a := range p.Attachments {
		content, err := base64.StdEncoding.DecodeString(a.Content)
		if err != nil {
			return nil, fmt.Errorf("attachment %s: %w", a.Filename, err)
		}
		m.Attachments = append(m.Attachments, mta.Attachment{Filename: a.Filename,
			ContentType: a.ContentType, Content: content, ContentID: a.ContentID})
	}
	return m, nil
}

// feedbackID is the Feedback-ID header (Gmail's feedback loop format
// "a:b:c:SenderId"): first tag, project id, "mailgate".
func feedbackID(dl store.Delivery) string {
	tag := "none"
	if len(dl.Tags) > 0 {
		tag = sanitizeFeedbackPart(dl.Tags[0])
	}
	return tag + ":" + dl.ProjectID + ":mailgate"
}

func sanitizeFeedbackPart(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ':' || r < 0x21 || r > 0x7e {
			return '_'
		}
		return r
	}, s)
}

// address parses a validated mailbox; the domain is put in A-label form.
func address(s string) (mta.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return mta.Address{}, err
	}
	at := strings.LastIndexByte(a.Address, '@')
	domain, err := idna.Lookup.ToASCII(a.Address[at+1:])
	if err != nil {
		return mta.Address{}, err
	}
	return mta.Address{Name: a.Name, Email: a.Address[:at+1] + strings.ToLower(domain)}, nil
}

func addresses(in []string) ([]mta.Address, error) {
	out := make([]mta.Address, 0, len(in))
	for _, s := range in {
		a, err := address(s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
