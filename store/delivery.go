package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// DeliveryRecipient is one recipient as the worker sees it.
type DeliveryRecipient struct {
	// Position is the recipient's index in the message (0-based); it names
	// the recipient in VERP tokens and outcomes.
	Position int
	Email    string
	Kind     string
	Status   string
}

// Delivery is a message loaded for sending.
type Delivery struct {
	ID                 string
	ProjectID          string
	KeyID              string
	FromDomain         string
	Tags               []string
	Metadata           map[string]string
	SendAt             *time.Time
	CreatedAt          time.Time
	PossiblyDuplicated bool
	Attempts           int
	Recipients         []DeliveryRecipient
	// Payload is the stored request, read in the start's transaction only
	// when the attempt has recipients to send (AttemptStart.Send).
	Payload Payload
}

// deliveryRecipients reads a message's recipients in position order.
func deliveryRecipients(ctx context.Context, q querier, id string) ([]DeliveryRecipient, error) {
	rows, err := q.QueryContext(ctx, `SELECT position, email, kind, status FROM recipients
		WHERE message_id = $1 ORDER BY position`, id)
	if err != nil {
		return nil, fmt.Errorf("recipients of %s: %w", id, err)
	}
	defer rows.Close()
	var out []DeliveryRecipient
	for rows.Next() {
		var r DeliveryRecipient
		if err := rows.Scan(&r.Position, &r.Email, &r.Kind, &r.Status); err != nil {
			return nil, fmt.Errorf("recipients of %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AttemptStart is what StartDelivery decided.
type AttemptStart struct {
	// Send are the recipients to relay now, marked sending; Status holds
	// the status each had before (to restore it when held back).
	Send []DeliveryRecipient
	// Suppressed were found on the suppression list and are not sent.
	Suppressed []string
	// Interrupted is true when a recipient was still sending from an
	// attempt that never finished (a worker killed mid-send): the upstream
	// may have accepted it, so the message is flagged possibly_duplicated.
	Interrupted bool
	// Attempted is set by StartFirstDelivery for a message that has
	// pending recipients but was attempted before: nothing was written,
	// and its later attempts belong to the message's own send task.
	Attempted bool
}

// Outcome is one recipient's result of an attempt.
type Outcome struct {
	Position int
	Email    string
	// Status is sent, deferred or failed; or the recipient's previous
	// status when it was held back (a rate limit) without an attempt.
	Status       string
	SMTPCode     int
	SMTPResponse string
	// Event is the event type to append ("" for none) with its data.
	Event     string
	EventData json.RawMessage
	// Suppress, when set, adds the address to the suppression list with
	// this reason (an existing entry is kept).
	Suppress string
	// PossiblyDuplicated flags the message: the upstream may have accepted
	// the message although no answer came.
	PossiblyDuplicated bool
}

// StartDelivery loads a message for sending and, when a recipient is still
// pending, records the attempt, all in one transaction: the message row is
// locked first (SELECT … FOR UPDATE on PostgreSQL; SQLite's write
// transaction is exclusive), so the recipients are read once under that
// lock; pending recipients now on the suppression list become suppressed
// (with a message.suppressed event), the others sending, and the message's
// attempt count grows. A recipient found still sending (an attempt that
// never finished) flags the message possibly_duplicated. With no pending
// recipient nothing changes and the AttemptStart is empty. The Delivery
// holds the attempt count and the recipients' statuses from before the
// attempt. ErrNotFound when the message does not exist.
//
// ends is when the attempt's task will have ended (its deadline): a
// message still started after that has lost its task, and
// MessagesOverdue lists it. Concurrent calls are written together
// (deliverywriter.go).
func (s *Store) StartDelivery(ctx context.Context, id string, ends time.Time) (Delivery, AttemptStart, error) {
	return s.submitStart(ctx, &startRequest{id: id, ends: ends})
}

// StartFirstDelivery is StartDelivery for a message's first attempt only,
// as a batch send task makes it: when the message has pending recipients
// but its attempt count is not zero (an earlier run of the batch deferred
// it, held it back or was killed while sending it), nothing is written and
// the AttemptStart has only Attempted set. The check is made under the
// message's lock, so a batch task and the message's own send task never
// both start the same message.
func (s *Store) StartFirstDelivery(ctx context.Context, id string, ends time.Time) (Delivery, AttemptStart, error) {
	return s.submitStart(ctx, &startRequest{id: id, ends: ends, firstOnly: true})
}

func (s *Store) submitStart(ctx context.Context, r *startRequest) (Delivery, AttemptStart, error) {
	r.done = make(chan struct{})
	s.deliveries.submit(ctx, deliveryOp{start: r})
	<-r.done
	return r.d, r.out, r.err
}

// RecordOutcomes writes recipients' results, their events (in the
// message's project), suppressions and the message status in one transaction, under the message's lock.
// Only recipients still sending change, so an outcome never overwrites a
// final status, and writing the same outcomes twice changes nothing the
// second time. The message status follows from all its recipients
// (SummarizeStatus); a possibly_duplicated flag is set when an outcome
// asks and never cleared.
//
// retryAt, when not zero, is when the message's next attempt is due if
// these outcomes leave it deferred (no recipient still sending): a
// deferred message whose task is missing after that is listed by
// MessagesOverdue. Zero keeps the time recorded by the start.
func (s *Store) RecordOutcomes(ctx context.Context, messageID string, outs []Outcome, retryAt time.Time) error {
	r := &outcomeRequest{messageID: messageID, outs: outs, retryAt: retryAt, done: make(chan struct{})}
	s.deliveries.submit(ctx, deliveryOp{outcome: r})
	<-r.done
	return r.err
}
