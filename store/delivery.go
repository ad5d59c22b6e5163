package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
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
	// Payload is the normalised request JSON the API stored.
	Payload    []byte
	Recipients []DeliveryRecipient
}

// LoadDelivery reads a message, its payload and its recipients for the
// worker. ErrNotFound when the message does not exist.
func (s *Store) LoadDelivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	var tags, metadata string
	var sendAt sql.NullInt64
	var created int64
	err := s.rdb.QueryRowContext(ctx, `SELECT id, project_id, key_id, from_domain, tags, metadata,
		send_at, created_at, possibly_duplicated, attempts, payload FROM messages WHERE id = $1`, id).
		Scan(&d.ID, &d.ProjectID, &d.KeyID, &d.FromDomain, &tags, &metadata, &sendAt, &created,
			&d.PossiblyDuplicated, &d.Attempts, &d.Payload)
	if err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s: %w", id, notFound(err))
	}
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s tags: %w", id, err)
	}
	if err := json.Unmarshal([]byte(metadata), &d.Metadata); err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s metadata: %w", id, err)
	}
	d.SendAt, d.CreatedAt = timePtr(sendAt), fromMicros(created)
	d.Recipients, err = deliveryRecipients(ctx, s.rdb, id, "")
	if err != nil {
		return Delivery{}, err
	}
	return d, nil
}

// pendingStatuses may still be sent.
func pendingStatuses() []string {
	return []string{StatusQueued, StatusScheduled, StatusDeferred, StatusSending}
}

func deliveryRecipients(ctx context.Context, q querier, id string, onlyPending string) ([]DeliveryRecipient, error) {
	query := `SELECT position, email, kind, status FROM recipients WHERE message_id = $1`
	args := []any{id}
	if onlyPending != "" {
		query += ` AND status IN (` + placeholders(2, len(pendingStatuses())) + `)`
		args = append(args, stringArgs(pendingStatuses())...)
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY position`, args...)
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

// AttemptStart is what BeginAttempt decided.
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
}

// BeginAttempt records a delivery attempt before anything is dialled, in
// one transaction: pending recipients now on the suppression list become
// suppressed (with a message.suppressed event), the others become sending,
// the message's attempt count grows and its status is recomputed.
func (s *Store) BeginAttempt(ctx context.Context, projectID, id string) (AttemptStart, error) {
	var out AttemptStart
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET attempts = attempts + 1, updated_at = $2
			WHERE id = $1`, id, micros(now)); err != nil {
			return fmt.Errorf("begin attempt %s: %w", id, err)
		}
		pending, err := deliveryRecipients(ctx, tx, id, "pending")
		if err != nil {
			return err
		}
		suppressed, err := suppressedIn(ctx, tx, projectID, pending)
		if err != nil {
			return err
		}
		out, err = s.markAttempt(ctx, tx, projectID, id, pending, suppressed, now)
		if err != nil {
			return err
		}
		return refreshMessageStatus(ctx, tx, id)
	})
	return out, err
}

// suppressedIn maps the suppressed addresses among rs to their reason.
func suppressedIn(ctx context.Context, tx *sql.Tx, projectID string, rs []DeliveryRecipient) (map[string]string, error) {
	out := map[string]string{}
	if len(rs) == 0 {
		return out, nil
	}
	args := []any{projectID}
	for _, r := range rs {
		args = append(args, normEmail(r.Email))
	}
	rows, err := tx.QueryContext(ctx, `SELECT email, reason FROM suppressions WHERE project_id = $1
		AND email IN (`+placeholders(2, len(rs))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var email, reason string
		if err := rows.Scan(&email, &reason); err != nil {
			return nil, fmt.Errorf("suppressions: %w", err)
		}
		out[email] = reason
	}
	return out, rows.Err()
}

// markAttempt applies BeginAttempt's decisions to the rows.
func (s *Store) markAttempt(ctx context.Context, tx *sql.Tx, projectID, id string, pending []DeliveryRecipient,
	suppressed map[string]string, now time.Time) (AttemptStart, error) {
	var out AttemptStart
	var evs []eventInput
	for _, r := range pending {
		status := StatusSending
		if reason, ok := suppressed[normEmail(r.Email)]; ok {
			status = StatusSuppressed
			out.Suppressed = append(out.Suppressed, r.Email)
			data, _ := json.Marshal(map[string]string{"reason": reason})
			evs = append(evs, eventInput{Recipient: r.Email, Type: EventSuppressed, Data: data})
		} else {
			out.Send = append(out.Send, r)
			out.Interrupted = out.Interrupted || r.Status == StatusSending
		}
		if _, err := tx.ExecContext(ctx, `UPDATE recipients SET status = $3, updated_at = $4
			WHERE message_id = $1 AND position = $2`, id, r.Position, status, micros(now)); err != nil {
			return out, fmt.Errorf("mark recipient %d of %s: %w", r.Position, id, err)
		}
	}
	if out.Interrupted {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET possibly_duplicated = $2 WHERE id = $1`, id, true); err != nil {
			return out, fmt.Errorf("flag %s: %w", id, err)
		}
	}
	return out, s.appendEvents(ctx, tx, projectID, id, evs, now)
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

// RecordOutcomes writes recipients' results, their events, suppressions
// and the message status in one transaction. Only recipients still
// sending are updated, so an outcome never overwrites a final status.
func (s *Store) RecordOutcomes(ctx context.Context, projectID, messageID string, outs []Outcome) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var evs []eventInput
		for _, o := range outs {
			changed, err := recordOutcome(ctx, tx, projectID, messageID, o, now)
			if err != nil {
				return err
			}
			if changed && o.Event != "" {
				evs = append(evs, eventInput{Recipient: o.Email, Type: o.Event, Data: o.EventData})
			}
		}
		if err := s.appendEvents(ctx, tx, projectID, messageID, evs, now); err != nil {
			return err
		}
		return refreshMessageStatus(ctx, tx, messageID)
	})
}

func recordOutcome(ctx context.Context, tx *sql.Tx, projectID, messageID string, o Outcome, now time.Time) (bool, error) {
	code := sql.NullInt64{Int64: int64(o.SMTPCode), Valid: o.SMTPCode != 0}
	res, err := tx.ExecContext(ctx, `UPDATE recipients SET status = $3, smtp_code = $4, smtp_response = $5,
		updated_at = $6 WHERE message_id = $1 AND position = $2 AND status = $7`,
		messageID, o.Position, o.Status, code, o.SMTPResponse, micros(now), StatusSending)
	if err != nil {
		return false, fmt.Errorf("record outcome %d of %s: %w", o.Position, messageID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if o.PossiblyDuplicated {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET possibly_duplicated = $2 WHERE id = $1`, messageID, true); err != nil {
			return false, fmt.Errorf("flag %s: %w", messageID, err)
		}
	}
	if o.Suppress != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (project_id, email) DO NOTHING`,
			projectID, normEmail(o.Email), o.Suppress, "delivery "+messageID+": "+truncate(o.SMTPResponse, 200),
			micros(now)); err != nil {
			return false, fmt.Errorf("suppress after %s: %w", messageID, err)
		}
	}
	return true, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
