package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

const messageColumns = `m.id, m.project_id, m.key_id, m.from_header, m.from_domain, m.subject, m.status,
	m.tags, m.metadata, m.send_at, m.possibly_duplicated, m.created_at, m.updated_at`

// GetMessage loads a message of the project with its recipients. Another
// project's message is ErrNotFound.
func (s *Store) GetMessage(ctx context.Context, projectID, id string) (Message, error) {
	return getMessage(ctx, s.rdb, projectID, id)
}

func getMessage(ctx context.Context, q querier, projectID, id string) (Message, error) {
	row := q.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages m
		WHERE m.id = $1 AND m.project_id = $2`, id, projectID)
	m, err := scanMessage(row)
	if err != nil {
		return Message{}, fmt.Errorf("message %s: %w", id, notFound(err))
	}
	recips, err := loadRecipients(ctx, q, []string{id})
	if err != nil {
		return Message{}, err
	}
	m.Recipients = recips[id]
	return m, nil
}

// ListMessages lists the project's messages matching f, newest first, with
// their recipients. The returned cursor fetches the next page; it is ""
// after the last page. A cursor this store did not hand out wraps
// ErrBadCursor.
func (s *Store) ListMessages(ctx context.Context, projectID string, f MessageFilter) ([]Message, string, error) {
	c := &conds{}
	from, plan, err := s.recipientSource(ctx, c, f.Recipient)
	if err != nil {
		return nil, "", err
	}
	if err := messageConds(c, projectID, f, plan); err != nil {
		return nil, "", err
	}
	limit := pageLimit(f.Page)
	q := `SELECT ` + messageColumns + from + c.sql() +
		` ORDER BY m.created_at DESC, m.id DESC LIMIT ` + c.arg(limit+1)
	args := c.args
	if s.dialect == DialectPostgres {
		// Planned with its values each time: a filter's best plan depends
		// on how many rows its value matches (an address copied on every
		// seventh message: walk the list newest first; a person's
		// address: read its few messages and sort them), and the generic
		// plan PostgreSQL moves a prepared statement to after five runs
		// took the second for the first: 22 s instead of 28 ms on a
		// million messages (docs/performance.md, "Console").
		args = append([]any{pgx.QueryExecModeCacheDescribe}, args...)
	}
	msgs, err := queryMessages(ctx, s.rdb, q, args)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(msgs) > limit {
		msgs = msgs[:limit]
		last := msgs[limit-1]
		next = cursor{T: micros(last.CreatedAt), K: last.ID}.encode()
	}
	if err := attachRecipients(ctx, s.rdb, msgs); err != nil {
		return nil, "", err
	}
	return msgs, next, nil
}

// recipientSource returns the list query's FROM clause and how its
// recipient filter finds the address's messages: on PostgreSQL always
// m.id IN (…), planned with the value; on SQLite by how many recipient
// rows the address has (fewRecipientRows). Its arguments go into c.
func (s *Store) recipientSource(ctx context.Context, c *conds, recipient string) (string, recipientPlan, error) {
	if recipient == "" || s.dialect != DialectSQLite {
		return ` FROM messages m`, recipientIn, nil
	}
	email := strings.ToLower(recipient)
	few, err := s.fewRecipientRows(ctx, email)
	if err != nil || !few {
		return ` FROM messages m`, recipientExists, err
	}
	// CROSS JOIN keeps SQLite's join order: the address's messages first,
	// each looked up by its primary key, then sorted; DISTINCT because one
	// message can carry the address twice (to and cc).
	return ` FROM (SELECT DISTINCT message_id FROM recipients WHERE email_lc = ` + c.arg(email) +
		`) r CROSS JOIN messages m ON m.id = r.message_id`, recipientFrom, nil
}

// fewRecipientsBound is the number of recipient rows under which SQLite
// reads an address's messages from its recipient rows rather than walking
// the project's messages newest first. SQLite keeps no statistics (the
// store never runs ANALYZE), so it cannot choose between the two by
// itself, and each is ruinous where the other is right: for an address
// copied on 15 % of a million messages the walk stops after about 340
// messages, for a person's address it reads the whole project
// (docs/performance.md, "Console"). Below the bound the sort reads at most
// this many messages.
const fewRecipientsBound = 1000

// fewRecipientRows reports whether email is on fewer than
// fewRecipientsBound recipient rows (of any project): a count of at most
// that many entries of recipients_email_lc_idx.
func (s *Store) fewRecipientRows(ctx context.Context, email string) (bool, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM recipients WHERE email_lc = $1 LIMIT `+
		strconv.Itoa(fewRecipientsBound)+`)`, email).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("list messages: count recipient: %w", err)
	}
	return n < fewRecipientsBound, nil
}

// recipientPlan is how a list query finds the messages of its recipient
// filter.
type recipientPlan int

const (
	// recipientIn: m.id IN (the address's message ids), which
	// PostgreSQL plans with the value's statistics (walk the list for a
	// common address, read a rare one's rows and sort them).
	recipientIn recipientPlan = iota
	// recipientExists: SQLite, a common address: walk the project's
	// messages newest first, probing each one's recipients by their
	// primary key (message_id, position), until the page is full.
	recipientExists
	// recipientFrom: SQLite, a rare address: the query reads from the
	// address's recipient rows (r), so no condition is added.
	recipientFrom
)

// messageConds adds f's WHERE conditions on messages m to c, the recipient
// filter's as plan says.
func messageConds(c *conds, projectID string, f MessageFilter, plan recipientPlan) error {
	cur, ok, err := decodeCursor(f.Cursor)
	if err != nil {
		return err
	}
	c.add("m.project_id = " + c.arg(projectID))
	if f.Status != "" {
		c.add("m.status = " + c.arg(f.Status))
	}
	if f.Tag != "" {
		c.add("m.id IN (SELECT message_id FROM message_tags WHERE tag = " + c.arg(f.Tag) + ")")
	}
	if f.Recipient != "" {
		email := strings.ToLower(f.Recipient)
		switch plan {
		case recipientIn:
			c.add("m.id IN (SELECT message_id FROM recipients WHERE email_lc = " + c.arg(email) + ")")
		case recipientExists:
			// The unary + keeps SQLite off recipients_email_lc_idx, which
			// it would otherwise search for every message (all of the
			// address's rows each time): the probe goes by the primary
			// key (message_id, position).
			c.add("EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND +r.email_lc = " +
				c.arg(email) + ")")
		case recipientFrom:
		}
	}
	if f.FromDomain != "" {
		c.add("m.from_domain = " + c.arg(f.FromDomain))
	}
	if f.Since != nil {
		c.add("m.created_at >= " + c.arg(micros(*f.Since)))
	}
	if f.Until != nil {
		c.add("m.created_at < " + c.arg(micros(*f.Until)))
	}
	if ok {
		c.add("(m.created_at, m.id) < (" + c.arg(cur.T) + ", " + c.arg(cur.K) + ")")
	}
	return nil
}

func queryMessages(ctx context.Context, q querier, query string, args []any) ([]Message, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return out, nil
}

// attachRecipients loads the recipients of msgs in one query.
func attachRecipients(ctx context.Context, q querier, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	recips, err := loadRecipients(ctx, q, ids)
	if err != nil {
		return err
	}
	for i := range msgs {
		msgs[i].Recipients = recips[msgs[i].ID]
	}
	return nil
}

// loadRecipients returns the recipients of the messages ids, in position
// order, keyed by message id.
func loadRecipients(ctx context.Context, q querier, ids []string) (map[string][]Recipient, error) {
	out := make(map[string][]Recipient, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		rows, err := q.QueryContext(ctx, `SELECT message_id, email, kind, status, smtp_code, smtp_response, updated_at
			FROM recipients WHERE message_id IN (`+placeholders(1, n)+`) ORDER BY message_id, position`,
			stringArgs(ids[:n])...)
		if err != nil {
			return nil, fmt.Errorf("load recipients: %w", err)
		}
		if err := scanRecipients(rows, out); err != nil {
			return nil, fmt.Errorf("load recipients: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

func scanRecipients(rows *sql.Rows, into map[string][]Recipient) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		var r Recipient
		var code sql.NullInt64
		var updated int64
		if err := rows.Scan(&id, &r.Email, &r.Kind, &r.Status, &code, &r.SMTPResponse, &updated); err != nil {
			return err
		}
		if code.Valid {
			c := int(code.Int64)
			r.SMTPCode = &c
		}
		r.UpdatedAt = fromMicros(updated)
		into[id] = append(into[id], r)
	}
	return rows.Err()
}

func scanMessage(r scanner) (Message, error) {
	var m Message
	var tags, metadata string
	var sendAt sql.NullInt64
	var created, updated int64
	if err := r.Scan(&m.ID, &m.ProjectID, &m.KeyID, &m.From, &m.FromDomain, &m.Subject, &m.Status,
		&tags, &metadata, &sendAt, &m.PossiblyDuplicated, &created, &updated); err != nil {
		return Message{}, err
	}
	if err := json.Unmarshal([]byte(tags), &m.Tags); err != nil {
		return Message{}, fmt.Errorf("message %s tags: %w", m.ID, err)
	}
	if err := json.Unmarshal([]byte(metadata), &m.Metadata); err != nil {
		return Message{}, fmt.Errorf("message %s metadata: %w", m.ID, err)
	}
	m.SendAt = timePtr(sendAt)
	m.CreatedAt = fromMicros(created)
	m.UpdatedAt = fromMicros(updated)
	return m, nil
}
