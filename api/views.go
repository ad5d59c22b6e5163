package api

import (
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/mailgate/mailgate/store"
)

// The JSON shapes of responses (openapi.yaml components). They are built
// from store types here and nowhere else.

type acceptedRecipientView struct {
	Email  string `json:"email"`
	Status string `json:"status"`
}

type acceptedView struct {
	ID         string                  `json:"id"`
	Status     string                  `json:"status"`
	Recipients []acceptedRecipientView `json:"recipients"`
	// Warnings are things the client should fix although the message was
	// accepted (a sender domain not verified, in development mode).
	Warnings []string `json:"warnings,omitempty"`
}

type recipientView struct {
	Email        string  `json:"email"`
	Kind         string  `json:"kind"`
	Status       string  `json:"status"`
	SMTPCode     *int    `json:"smtp_code"`
	SMTPResponse *string `json:"smtp_response"`
	UpdatedAt    string  `json:"updated_at"`
}

type messageView struct {
	ID                 string            `json:"id"`
	Status             string            `json:"status"`
	From               string            `json:"from"`
	Subject            string            `json:"subject"`
	Tags               []string          `json:"tags"`
	Metadata           map[string]string `json:"metadata"`
	SendAt             *string           `json:"send_at"`
	PossiblyDuplicated bool              `json:"possibly_duplicated"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
	Recipients         []recipientView   `json:"recipients"`
}

// messageDetailView is a message with its event log (GET, cancel).
type messageDetailView struct {
	messageView
	Events []eventView `json:"events"`
}

// eventView is one event; its data is what a webhook delivery carries.
// An event without a message has no message_id nor recipient: one about a
// sender domain (domain.*) carries domain instead, one about a webhook
// endpoint (webhook.disabled) neither.
type eventView struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	MessageID string          `json:"message_id,omitempty"`
	Recipient *string         `json:"recipient,omitempty"`
	Domain    string          `json:"domain,omitempty"`
	Sequence  int64           `json:"sequence"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

type listView[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

type suppressionView struct {
	Email     string `json:"email"`
	Reason    string `json:"reason"`
	Note      string `json:"note"`
	CreatedAt string `json:"created_at"`
}

// timeString is the wire form of a time: RFC 3339 in UTC.
func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timeString(*t)
	return &s
}

func toMessageView(m store.Message) messageView {
	v := messageView{
		ID: m.ID, Status: m.Status, From: m.From, Subject: m.Subject,
		Tags: m.Tags, Metadata: m.Metadata, SendAt: optTime(m.SendAt),
		PossiblyDuplicated: m.PossiblyDuplicated,
		CreatedAt:          timeString(m.CreatedAt), UpdatedAt: timeString(m.UpdatedAt),
		Recipients: make([]recipientView, len(m.Recipients)),
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	for i, r := range m.Recipients {
		v.Recipients[i] = toRecipientView(r)
	}
	return v
}

func toMessageDetailView(m store.Message, events []store.Event) (messageDetailView, error) {
	v := messageDetailView{messageView: toMessageView(m), Events: make([]eventView, len(events))}
	for i, e := range events {
		ev, err := toEventView(e)
		if err != nil {
			return messageDetailView{}, err
		}
		v.Events[i] = ev
	}
	return v, nil
}

func toRecipientView(r store.Recipient) recipientView {
	v := recipientView{Email: r.Email, Kind: r.Kind, Status: r.Status, SMTPCode: r.SMTPCode,
		UpdatedAt: timeString(r.UpdatedAt)}
	if r.SMTPResponse != "" {
		resp := r.SMTPResponse
		v.SMTPResponse = &resp
	}
	return v
}

func toEventView(e store.Event) (eventView, error) {
	data, err := e.WebhookData()
	if err != nil {
		return eventView{}, err
	}
	v := eventView{ID: strconv.FormatInt(e.ID, 10), Type: e.Type, MessageID: e.MessageID, Domain: e.Domain,
		Sequence: e.Sequence, Timestamp: timeString(e.CreatedAt), Data: data}
	if e.MessageID != "" {
		recipient := e.Recipient // "" for a message-wide event, and still present
		v.Recipient = &recipient
	}
	return v, nil
}

func toSuppressionView(sp store.Suppression) suppressionView {
	return suppressionView{Email: sp.Email, Reason: sp.Reason, Note: sp.Note, CreatedAt: timeString(sp.CreatedAt)}
}

func cursorPtr(next string) *string {
	if next == "" {
		return nil
	}
	return &next
}

// jsonEncode writes v as compact JSON.
func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
