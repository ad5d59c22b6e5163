package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Multi-row INSERT heads of CreateMessages and their column counts.
const (
	insertMessage = `INSERT INTO messages (id, project_id, key_id, from_header, from_domain, subject,
		status, tags, metadata, send_at, payload, event_seq, created_at, updated_at, batch_id)`
	messageInsertCols = 15
	// On SQLite the payload has a table of its own (migration 00005).
	insertMessageSQLite = `INSERT INTO messages (id, project_id, key_id, from_header, from_domain, subject,
		status, tags, metadata, send_at, event_seq, created_at, updated_at, batch_id)`
	messageInsertColsSQLite = 14
	insertPayload           = `INSERT INTO message_payloads (message_id, payload)`
	payloadCols             = 2
	// payloadColumn is the payload's position in a row of insertMessage.
	payloadColumn   = 10
	insertRecipient = `INSERT INTO recipients (message_id, position, email, email_lc, kind, status, updated_at)`
	recipientCols   = 7
	insertTag       = `INSERT INTO message_tags (message_id, tag)`
	tagCols         = 2
)

// batch holds the flattened INSERT arguments of one CreateMessages call.
// When checkSuppressed is set, unchecked lists, per project, the lower-cased
// addresses of recipients not already marked suppressed.
type batch struct {
	messages, recipients, events, tags []any
	checkSuppressed                    bool
	unchecked                          map[string][]string
}

// ErrSuppressedRecipient is returned by CreateUnsuppressedMessages when a
// recipient it was to write as queued or scheduled is on its project's
// suppression list; nothing was written.
var ErrSuppressedRecipient = errors.New("a recipient is on the suppression list")

// CreateMessages commits msgs in one transaction: each message with its
// recipients (in the given order), one first event per recipient
// (message.queued, or message.suppressed for suppressed recipients,
// sequence 1, 2, …) and its tag rows. When idem is not nil the same
// transaction finishes that idempotency key with idem's response; with no
// messages it only does that. On any error nothing is written.
func (s *Store) CreateMessages(ctx context.Context, msgs []NewMessage, idem *IdempotencyResult) error {
	return s.createMessages(ctx, &batch{}, msgs, idemList(idem))
}

// CreateUnsuppressedMessages is CreateMessages for recipients not yet
// checked against the suppression list: in the same transaction it checks
// every recipient not already marked suppressed, and when one is on its
// project's list it writes nothing and returns ErrSuppressedRecipient (the
// caller then looks the statuses up with SuppressedAmong and uses
// CreateMessages). On PostgreSQL the check costs no extra round trip.
func (s *Store) CreateUnsuppressedMessages(ctx context.Context, msgs []NewMessage, idem *IdempotencyResult) error {
	return s.createMessages(ctx, newCheckedBatch(), msgs, idemList(idem))
}

// newCheckedBatch is a batch that checks its recipients against the
// suppression list.
func newCheckedBatch() *batch {
	return &batch{checkSuppressed: true, unchecked: map[string][]string{}}
}

// idemList is the one idempotency key to finish, or none.
func idemList(idem *IdempotencyResult) []*IdempotencyResult {
	if idem == nil {
		return nil
	}
	return []*IdempotencyResult{idem}
}

// createMessages commits msgs and finishes every key of idems in one
// transaction (one statement on PostgreSQL when it fits).
func (s *Store) createMessages(ctx context.Context, b *batch, msgs []NewMessage, idems []*IdempotencyResult) error {
	now := s.now()
	for i := range msgs {
		if err := b.add(&msgs[i], now); err != nil {
			return err
		}
	}
	if len(msgs) == 0 && len(idems) == 0 {
		return nil
	}
	if s.dialect == DialectPostgres {
		if ok, err := s.createPostgres(ctx, b, idems, now); ok {
			return err
		}
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := b.checkUnsuppressed(ctx, tx); err != nil {
			return err
		}
		if err := b.insert(ctx, s, tx); err != nil {
			return err
		}
		for _, idem := range idems {
			if err := finishIdempotency(ctx, tx, idem, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// add validates m and appends its rows.
func (b *batch) add(m *NewMessage, now time.Time) error {
	if m.ID == "" || m.ProjectID == "" {
		return errors.New("insert message: id and project id are required")
	}
	created := m.CreatedAt
	if created.IsZero() {
		created = now
	}
	statuses := make([]string, len(m.Recipients))
	for i, r := range m.Recipients {
		if err := b.addRecipient(m, i, r, created); err != nil {
			return err
		}
		statuses[i] = r.Status
	}
	tags, metadata, err := messageJSON(m.Tags, m.Metadata)
	if err != nil {
		return fmt.Errorf("insert message %s: %w", m.ID, err)
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	b.messages = append(b.messages, m.ID, m.ProjectID, m.KeyID, m.From, m.FromDomain, m.Subject,
		SummarizeStatus(statuses), tags, metadata, nullMicros(m.SendAt), payload,
		int64(len(m.Recipients)), micros(created), micros(created), nullString(m.BatchID))
	for _, tag := range m.Tags {
		b.tags = append(b.tags, m.ID, tag)
	}
	return nil
}

// addRecipient appends recipient i of m and its first event.
func (b *batch) addRecipient(m *NewMessage, i int, r NewRecipient, created time.Time) error {
	typ, data := EventQueued, "{}"
	switch r.Status {
	case StatusQueued:
	case StatusScheduled:
		if m.SendAt != nil {
			data = `{"send_at":"` + m.SendAt.UTC().Format(time.RFC3339Nano) + `"}`
		}
	case StatusSuppressed:
		typ = EventSuppressed
	default:
		return fmt.Errorf("insert message %s: recipient %d: status %q is not queued, scheduled or suppressed", m.ID, i, r.Status)
	}
	b.recipients = append(b.recipients, m.ID, i, r.Email, normEmail(r.Email), r.Kind, r.Status, micros(created))
	if b.checkSuppressed && r.Status != StatusSuppressed {
		b.unchecked[m.ProjectID] = append(b.unchecked[m.ProjectID], normEmail(r.Email))
	}
	b.events = append(b.events, m.ProjectID, m.ID, r.Email, typ, int64(i+1), data, micros(created))
	return nil
}

// insertStep is one multi-row INSERT of a batch.
type insertStep struct {
	what, head string
	cols       int
	args       []any
	tail       string
}

// insert writes the batch with one multi-row INSERT per table.
func (b *batch) insert(ctx context.Context, s *Store, tx *sql.Tx) error {
	steps := []insertStep{{"messages", insertMessage, messageInsertCols, b.messages, ""}}
	if s.dialect == DialectSQLite {
		msgs, payloads := splitPayloads(b.messages)
		steps = []insertStep{
			{"messages", insertMessageSQLite, messageInsertColsSQLite, msgs, ""},
			{"payloads", insertPayload, payloadCols, payloads, ""},
		}
	}
	steps = append(steps,
		insertStep{"recipients", insertRecipient, recipientCols, b.recipients, ""},
		insertStep{"events", insertEvent, eventCols, b.events, ""},
		insertStep{"tags", insertTag, tagCols, b.tags, " ON CONFLICT DO NOTHING"})
	for _, st := range steps {
		if err := s.insertRows(ctx, tx, st.head, st.cols, st.args, st.tail); err != nil {
			return fmt.Errorf("insert %s: %w", st.what, err)
		}
	}
	return nil
}

// splitPayloads splits rows of insertMessage into rows of
// insertMessageSQLite and rows of insertPayload.
func splitPayloads(rows []any) (msgs, payloads []any) {
	n := len(rows) / messageInsertCols
	msgs, payloads = make([]any, 0, n*messageInsertColsSQLite), make([]any, 0, n*payloadCols)
	for r := range n {
		row := rows[r*messageInsertCols : (r+1)*messageInsertCols]
		msgs = append(append(msgs, row[:payloadColumn]...), row[payloadColumn+1:]...)
		payloads = append(payloads, row[0], row[payloadColumn])
	}
	return msgs, payloads
}

// checkUnsuppressed returns ErrSuppressedRecipient when the batch checks
// suppressions and one of its unchecked recipients is suppressed, reading
// inside tx.
func (b *batch) checkUnsuppressed(ctx context.Context, tx *sql.Tx) error {
	for projectID, emails := range b.unchecked {
		found, err := suppressedAmong(ctx, tx, projectID, emails)
		if err != nil {
			return err
		}
		if len(found) > 0 {
			return ErrSuppressedRecipient
		}
	}
	return nil
}

// messageJSON encodes tags and metadata, never as null.
func messageJSON(tags []string, metadata map[string]string) (string, string, error) {
	if tags == nil {
		tags = []string{}
	}
	if metadata == nil {
		metadata = map[string]string{}
	}
	t, err := json.Marshal(tags)
	if err != nil {
		return "", "", fmt.Errorf("tags: %w", err)
	}
	md, err := json.Marshal(metadata)
	if err != nil {
		return "", "", fmt.Errorf("metadata: %w", err)
	}
	return string(t), string(md), nil
}

// MessagesOverdue lists up to limit messages that were started (sending,
// or deferred for a retry) and whose next attempt was due before
// dueBefore (StartDelivery's ends, RecordOutcomes's retryAt), the longest
// overdue first: by then the task of a sending message has ended and a
// deferred message's retry has run, so one still sending or deferred may
// have lost its task (a Redis that lost its data), and the reconciler
// enqueues one again. Each is Attempted and has no batch: its own send
// task makes its next attempt.
func (s *Store) MessagesOverdue(ctx context.Context, dueBefore time.Time, limit int) ([]QueuedRef, error) {
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id FROM messages
		WHERE status IN ($1, $2) AND next_attempt_at < $3 ORDER BY next_attempt_at, id LIMIT $4`,
		StatusSending, StatusDeferred, micros(dueBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("overdue messages: %w", err)
	}
	defer rows.Close()
	var out []QueuedRef
	for rows.Next() {
		ref := QueuedRef{Attempted: true}
		if err := rows.Scan(&ref.ID); err != nil {
			return nil, fmt.Errorf("overdue messages: %w", err)
		}
		out = append(out, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("overdue messages: %w", err)
	}
	return out, nil
}

// MessagesAwaitingTask lists up to limit messages still queued or
// scheduled that were created before createdBefore, oldest first, for the
// reconciler to enqueue again.
func (s *Store) MessagesAwaitingTask(ctx context.Context, createdBefore time.Time, limit int) ([]QueuedRef, error) {
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, send_at, batch_id, attempts FROM messages
		WHERE status IN ($1, $2) AND created_at < $3 ORDER BY created_at, id LIMIT $4`,
		StatusQueued, StatusScheduled, micros(createdBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("messages awaiting task: %w", err)
	}
	defer rows.Close()
	var out []QueuedRef
	for rows.Next() {
		var ref QueuedRef
		var sendAt sql.NullInt64
		var batchID sql.NullString
		var attempts int64
		if err := rows.Scan(&ref.ID, &sendAt, &batchID, &attempts); err != nil {
			return nil, fmt.Errorf("messages awaiting task: %w", err)
		}
		ref.SendAt, ref.BatchID = timePtr(sendAt), batchID.String
		ref.Attempted = attempts > 0
		out = append(out, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("messages awaiting task: %w", err)
	}
	return out, nil
}
