package store

import (
	"encoding/json"
	"time"
)

// Recipient statuses (docs/architecture.md "Statuses"). The message status summarises
// its recipients' statuses, see SummarizeStatus.
const (
	StatusQueued     = "queued"
	StatusScheduled  = "scheduled"
	StatusSending    = "sending"
	StatusDeferred   = "deferred"
	StatusSent       = "sent"
	StatusFailed     = "failed"
	StatusBounced    = "bounced"
	StatusComplained = "complained"
	StatusSuppressed = "suppressed"
	StatusCancelled  = "cancelled"
	// StatusPartial is a message status only: every recipient is final but
	// they do not share one status.
	StatusPartial = "partial"
)

// Event types (docs/architecture.md "Events").
const (
	EventQueued      = "message.queued"
	EventSent        = "message.sent"
	EventDeferred    = "message.deferred"
	EventFailed      = "message.failed"
	EventSuppressed  = "message.suppressed"
	EventCancelled   = "message.cancelled"
	EventBounced     = "message.bounced"
	EventComplained  = "message.complained"
	EventReplied     = "message.replied"
	EventAutoReplied = "message.auto_replied"
)

// Suppression reasons (docs/architecture.md "Statuses").
const (
	ReasonHardBounce  = "hard_bounce"
	ReasonComplaint   = "complaint"
	ReasonSoftBounces = "soft_bounces"
	ReasonManual      = "manual"
)

// Recipient kinds: the header a recipient was given in.
const (
	KindTo  = "to"
	KindCc  = "cc"
	KindBcc = "bcc"
)

// DefaultProjectName is the project that exists from the first start.
const DefaultProjectName = "default"

// Project owns keys, domains, messages, events, suppressions and webhooks.
type Project struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// APIKey is a stored API key. Only a hash of the secret part is kept.
type APIKey struct {
	// ID is the public id part of the token (the part after "mg_").
	ID        string
	ProjectID string
	Name      string
	Scopes    []string
	// SecretHash is SHA-256 of the secret part of the token.
	SecretHash []byte
	CreatedAt  time.Time
	// RevokedAt is nil while the key is usable.
	RevokedAt *time.Time
}

// NewMessage is an accepted message ready to be committed with its
// recipients and their first events.
type NewMessage struct {
	ID        string
	ProjectID string
	KeyID     string
	// From is the whole From value as given ("Shop <orders@shop.example>").
	From string
	// FromDomain is the sender domain, lower case, IDN in A-label form.
	FromDomain string
	Subject    string
	Tags       []string
	Metadata   map[string]string
	// SendAt is set for scheduled messages.
	SendAt *time.Time
	// Payload is the accepted request, used later to build the MIME
	// message. It never leaves the store through the API.
	Payload    Payload
	Recipients []NewRecipient
	CreatedAt  time.Time
}

// NewRecipient is one distinct recipient of a NewMessage. Status is queued
// or scheduled (suppressed to write it suppressed whatever the list says);
// CreateMessages writes a recipient on its project's suppression list as
// suppressed.
type NewRecipient struct {
	Email  string
	Kind   string
	Status string
}

// Created is what CreateMessages wrote for one message.
type Created struct {
	ID string
	// Status is the message's status (SummarizeStatus of Recipients).
	Status string
	// Recipients are the statuses the recipients were written with, in
	// the order given.
	Recipients []string
	// BatchID is set when the message shares one batch send task (task id
	// BatchID) with the other messages of its group that are to be sent
	// now; empty for a message with a send task of its own.
	BatchID string
	// Batch lists the ids of the batch's messages, on the batch's first
	// message only: whoever committed that message enqueues the batch's
	// task.
	Batch []string
}

// Message is a stored message with its recipients.
type Message struct {
	ID                 string
	ProjectID          string
	KeyID              string
	From               string
	FromDomain         string
	Subject            string
	Status             string
	Tags               []string
	Metadata           map[string]string
	SendAt             *time.Time
	PossiblyDuplicated bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
	Recipients         []Recipient
}

// Recipient is one recipient of a stored message.
type Recipient struct {
	Email        string
	Kind         string
	Status       string
	SMTPCode     *int
	SMTPResponse string
	UpdatedAt    time.Time
}

// Event is one entry of the event log; it is also the webhook outbox.
type Event struct {
	ID        int64
	ProjectID string
	// MessageID is the message the event is about; "" for an event
	// without a message: one about a sender domain (domain.*), which has
	// Domain instead, or about a webhook endpoint (webhook.disabled).
	MessageID string
	// Domain is the sender domain of a domain.* event; "" otherwise.
	Domain    string
	Recipient string
	Type      string
	// Sequence is the per-message sequence number (1, 2, …); 0 for an
	// event without a message.
	Sequence int64
	// Data holds the type-specific details as stored; WebhookData adds
	// the message's fields.
	Data json.RawMessage
	// Tags and Metadata are the message's (none for an event without a
	// message).
	Tags      []string
	Metadata  map[string]string
	CreatedAt time.Time
}

// Suppression is an address a project does not send to.
type Suppression struct {
	ProjectID string
	Email     string
	Reason    string
	Note      string
	CreatedAt time.Time
}

// Page asks for one page of a list, newest first.
type Page struct {
	// Limit is the page size; the caller bounds it.
	Limit int
	// Cursor is the opaque cursor returned as next_cursor, or "".
	Cursor string
}

// MessageFilter narrows ListMessages. Zero fields do not filter.
type MessageFilter struct {
	Status    string
	Tag       string
	Recipient string
	// FromDomain keeps the messages of this sender domain (lower case,
	// A-label form, as stored).
	FromDomain string
	Since      *time.Time
	Until      *time.Time
	Page
}

// EventFilter narrows ListEvents. Zero fields do not filter.
type EventFilter struct {
	Type      string
	MessageID string
	Recipient string
	Since     *time.Time
	Until     *time.Time
	Page
}

// SuppressionFilter narrows ListSuppressions.
type SuppressionFilter struct {
	Reason string
	// Search, when set, keeps the addresses containing it (any case).
	Search string
	Page
}

// IdempotencyState says what an Idempotency-Key has seen so far.
type IdempotencyState struct {
	// Fresh is true when this call claimed the key: the caller processes the
	// request and finishes it with the message transaction.
	Fresh bool
	// Token identifies a Fresh claim. Finishing or releasing the claim
	// requires it, so a request whose claim went stale and was taken over
	// can touch the new holder's claim no more.
	Token string
	// InFlight is true when another request holds the key and has not
	// finished.
	InFlight bool
	// RequestHash of the request that first used the key.
	RequestHash []byte
	// ResponseCode and ResponseBody of the finished first request.
	ResponseCode int
	ResponseBody []byte
}

// IdempotencyResult finishes a claimed Idempotency-Key in the transaction
// that creates its request's messages.
type IdempotencyResult struct {
	KeyID string
	Key   string
	// Token is the claim's IdempotencyState.Token.
	Token string
	// Respond returns the response to record for the request, given what
	// the transaction writes for its messages (one Created each, in the
	// order given). It is called inside the transaction, before anything
	// is committed; an error aborts the transaction.
	Respond func([]Created) (code int, body []byte, err error)
}

// QueuedRef names a message waiting for a send task.
type QueuedRef struct {
	ID     string
	SendAt *time.Time
	// BatchID is the send task of the batch the message was accepted in,
	// empty when the message has a task of its own.
	BatchID string
	// Attempted: a delivery of the message was started before. A batched
	// message started once belongs to its own send task from then on.
	Attempted bool
}

// BatchID is the id of a batch of messages sent by one batch send task
// (also that task's id), named after the batch's first message. It never
// equals a message id.
func BatchID(firstMessageID string) string { return "batch:" + firstMessageID }
