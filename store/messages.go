package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Creating messages: CreateMessages (one request's messages) and
// CommitMessage (concurrent single sends gathered by the batcher) write a
// group of messages the same way. The recipients are checked against their
// projects' suppression lists, the statuses decided (planCreate), each
// idempotency key's response built from them, and the rows written at
// once (messagewrite.go; PostgreSQL: one statement, SQLite: one prepared
// single-row INSERT per row in one transaction, cheap in process). A group
// of one is a group.

// CreateMessages commits msgs in one transaction: each message with its
// recipients (in the given order; those on their project's suppression
// list as suppressed), one first event per recipient (message.queued, or
// message.suppressed, sequence 1, 2, …), its payload and its tag rows. The
// messages to be sent now (queued, no send_at) share one batch send task
// when there are at least two (Created). When idem is not nil the same
// transaction finishes that idempotency key, with the response idem
// builds from the Created of msgs; with no messages it only does that. On
// any error nothing is written; ErrIdempotencyLost when idem's claim is no
// longer held.
func (s *Store) CreateMessages(ctx context.Context, msgs []NewMessage, idem *IdempotencyResult) ([]Created, error) {
	var keys []keyFinish
	if idem != nil {
		keys = []keyFinish{{idem: idem, from: 0, to: len(msgs)}}
	}
	return s.createGroup(ctx, msgs, keys)
}

// keyFinish is an idempotency key finished by a group, with the range
// [from, to) of the group's messages its response is built from.
type keyFinish struct {
	idem     *IdempotencyResult
	from, to int
}

// createGroup writes msgs and finishes keys in one transaction.
func (s *Store) createGroup(ctx context.Context, msgs []NewMessage, keys []keyFinish) ([]Created, error) {
	if len(msgs) == 0 && len(keys) == 0 {
		return nil, nil
	}
	for i := range msgs {
		if err := checkNewMessage(&msgs[i]); err != nil {
			return nil, err
		}
	}
	if s.dialect == DialectPostgres {
		return s.createPostgres(ctx, msgs, keys)
	}
	return s.createSQLite(ctx, msgs, keys)
}

// checkNewMessage refuses a message the store cannot write.
func checkNewMessage(m *NewMessage) error {
	if m.ID == "" || m.ProjectID == "" {
		return errors.New("insert message: id and project id are required")
	}
	for i, r := range m.Recipients {
		switch r.Status {
		case StatusQueued, StatusScheduled, StatusSuppressed:
		default:
			return fmt.Errorf("insert message %s: recipient %d: status %q is not queued, scheduled or suppressed", m.ID, i, r.Status)
		}
	}
	return nil
}

// projectEmail keys a suppression: a project and a lower-cased address.
type projectEmail struct{ project, email string }

// toCheck lists the recipients of msgs to look up on the suppression
// lists (those not already suppressed).
func toCheck(msgs []NewMessage) []projectEmail {
	var out []projectEmail
	for _, m := range msgs {
		for _, r := range m.Recipients {
			if r.Status != StatusSuppressed {
				out = append(out, projectEmail{m.ProjectID, normEmail(r.Email)})
			}
		}
	}
	return out
}

// createPlan is a group's rows, flattened row after row per table (the
// columns of createTables), what it created and the keys it finishes.
type createPlan struct {
	rows    [numCreateTables][]any
	created []Created
	keys    []keyRow
}

// keyRow is an idempotency key to finish, with its response.
type keyRow struct {
	keyID, key, token string
	code              int
	body              []byte
}

// planCreate decides every recipient's status and the group's batch, and
// builds the rows and the keys' responses.
func (s *Store) planCreate(msgs []NewMessage, keys []keyFinish, suppressed map[projectEmail]bool) (*createPlan, error) {
	now := s.now()
	p := &createPlan{created: make([]Created, len(msgs))}
	for i := range msgs {
		p.created[i] = decide(&msgs[i], suppressed)
	}
	assignBatch(msgs, p.created)
	for i := range msgs {
		if err := p.add(&msgs[i], p.created[i], now); err != nil {
			return nil, err
		}
	}
	for _, k := range keys {
		code, body, err := k.idem.Respond(p.created[k.from:k.to])
		if err != nil {
			return nil, fmt.Errorf("finish idempotency key: %w", err)
		}
		if body == nil {
			body = []byte{}
		}
		p.keys = append(p.keys, keyRow{k.idem.KeyID, k.idem.Key, k.idem.Token, code, body})
	}
	return p, nil
}

// decide is what m's recipients are written as.
func decide(m *NewMessage, suppressed map[projectEmail]bool) Created {
	c := Created{ID: m.ID, Recipients: make([]string, len(m.Recipients))}
	for i, r := range m.Recipients {
		c.Recipients[i] = r.Status
		if suppressed[projectEmail{m.ProjectID, normEmail(r.Email)}] {
			c.Recipients[i] = StatusSuppressed
		}
	}
	c.Status = SummarizeStatus(c.Recipients)
	return c
}

// assignBatch is the one place that decides which messages share a batch
// send task: those of a group that are to be sent now (queued, no
// send_at), when there are at least two. One task for many messages costs
// Redis three round trips instead of three per message; the messages it
// cannot finish at the first attempt get tasks of their own.
func assignBatch(msgs []NewMessage, created []Created) {
	var members []int
	var ids []string
	for i, m := range msgs {
		if m.SendAt == nil && created[i].Status == StatusQueued {
			members, ids = append(members, i), append(ids, m.ID)
		}
	}
	if len(members) < 2 {
		return
	}
	id := BatchID(ids[0])
	for _, i := range members {
		created[i].BatchID = id
	}
	created[members[0]].Batch = ids
}

// add appends m's rows.
func (p *createPlan) add(m *NewMessage, c Created, now time.Time) error {
	created := m.CreatedAt
	if created.IsZero() {
		created = now
	}
	at := micros(created)
	tags, metadata, err := messageJSON(m.Tags, m.Metadata)
	if err != nil {
		return fmt.Errorf("insert message %s: %w", m.ID, err)
	}
	var sendAt, batchID any
	if m.SendAt != nil {
		sendAt = micros(*m.SendAt)
	}
	if c.BatchID != "" {
		batchID = c.BatchID
	}
	p.rows[tableMessages] = append(p.rows[tableMessages], m.ID, m.ProjectID, m.KeyID, m.From, m.FromDomain,
		m.Subject, c.Status, tags, metadata, sendAt, int64(len(m.Recipients)), at, at, batchID)
	p.rows[tablePayloads] = append(p.rows[tablePayloads], m.ID, string(m.Payload.Request), []byte(m.Payload.Text), []byte(m.Payload.HTML))
	for i, r := range m.Recipients {
		typ, data := firstEvent(m, c.Recipients[i])
		p.rows[tableRecipients] = append(p.rows[tableRecipients], m.ID, int64(i), r.Email, normEmail(r.Email), r.Kind, c.Recipients[i], at)
		p.rows[tableEvents] = append(p.rows[tableEvents], m.ProjectID, m.ID, r.Email, typ, int64(i+1), data, at)
	}
	for _, tag := range m.Tags {
		p.rows[tableTags] = append(p.rows[tableTags], m.ID, tag)
	}
	return nil
}

// firstEvent is the type and data of a recipient's first event.
func firstEvent(m *NewMessage, status string) (typ, data string) {
	switch {
	case status == StatusSuppressed:
		return EventSuppressed, "{}"
	case status == StatusScheduled && m.SendAt != nil:
		return EventQueued, `{"send_at":"` + m.SendAt.UTC().Format(time.RFC3339Nano) + `"}`
	}
	return EventQueued, "{}"
}

// The tables a group writes, in order: foreign keys point backwards, and
// tags come before events because writing an event matches it against the
// webhook endpoints' tag filters (migration 00012's trigger).
const (
	tableMessages = iota
	tablePayloads
	tableRecipients
	tableTags
	tableEvents
	numCreateTables
)

// createTable is one table a group writes: its INSERT head, its columns'
// PostgreSQL types (for unnest) and what follows the rows.
type createTable struct {
	head  string
	types []string
	tail  string
}

// createTables are the tables of a group, indexed by tableMessages….
var createTables = [numCreateTables]createTable{
	tableMessages: {`INSERT INTO messages (id, project_id, key_id, from_header, from_domain, subject,
		status, tags, metadata, send_at, event_seq, created_at, updated_at, batch_id)`,
		[]string{"text", "text", "text", "text", "text", "text", "text", "text", "text", "bigint", "bigint", "bigint", "bigint", "text"}, ""},
	tablePayloads: {`INSERT INTO message_payloads (message_id, request, text, html)`, []string{"text", "text", "bytea", "bytea"}, ""},
	tableRecipients: {`INSERT INTO recipients (message_id, position, email, email_lc, kind, status, updated_at)`,
		[]string{"text", "int", "text", "text", "text", "text", "bigint"}, ""},
	tableEvents: {insertEvent, []string{"text", "text", "text", "text", "bigint", "text", "bigint"}, ""},
	tableTags:   {`INSERT INTO message_tags (message_id, tag)`, []string{"text", "text"}, " ON CONFLICT DO NOTHING"},
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
