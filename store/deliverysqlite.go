package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// On SQLite a delivery group is one write transaction (exclusive: no
// message row needs a lock of its own), reading and writing row by row
// with statements prepared once: each is a call into the library, not a
// round trip, and the group shares one WAL sync.

// sqliteDelivery holds the prepared statements of a delivery group on
// SQLite.
type sqliteDelivery struct {
	message, recipients, writeRecipient, writeMessage, insertEvent, suppress, payload *stmt
}

func newSQLiteDelivery(db *sql.DB) *sqliteDelivery {
	return &sqliteDelivery{
		message: newStmt(db, `SELECT `+lockedColumns+` FROM messages WHERE id = $1`),
		recipients: newStmt(db, `SELECT r.position, r.email, r.kind, r.status,
				CASE WHEN $3 THEN (SELECT s.reason FROM suppressions s WHERE s.project_id = $2 AND s.email = r.email_lc) END
			FROM recipients r WHERE r.message_id = $1 ORDER BY r.position`),
		writeRecipient: newStmt(db, `UPDATE recipients SET status = $3,
				smtp_code = CASE WHEN $4 THEN $5 ELSE smtp_code END,
				smtp_response = CASE WHEN $4 THEN $6 ELSE smtp_response END, updated_at = $7
			WHERE message_id = $1 AND position = $2`),
		writeMessage: newStmt(db, `UPDATE messages SET status = $2, attempts = attempts + $3,
				possibly_duplicated = possibly_duplicated OR $4, event_seq = $5,
				next_attempt_at = COALESCE($6, next_attempt_at), updated_at = $7
			WHERE id = $1`),
		insertEvent: newStmt(db, insertEvent+` VALUES ($1, $2, $3, $4, $5, $6, $7)`),
		suppress: newStmt(db, `INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (project_id, email) DO NOTHING`),
		payload: newStmt(db, `SELECT request, text, html FROM message_payloads WHERE message_id = $1`),
	}
}

func (q *sqliteDelivery) all() []*stmt {
	return []*stmt{q.message, q.recipients, q.writeRecipient, q.writeMessage, q.insertEvent, q.suppress, q.payload}
}

// prepare prepares the statements not prepared yet. It runs before the
// transaction begins: the pool's one connection is the transaction's
// until it ends.
func (q *sqliteDelivery) prepare(ctx context.Context) error {
	for _, st := range q.all() {
		if _, err := st.prepared(ctx); err != nil {
			return err
		}
	}
	return nil
}

// close releases the statements.
func (q *sqliteDelivery) close() error {
	var first error
	for _, st := range q.all() {
		if err := st.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// writeGroupSQLite runs ops as one transaction; on error nothing was
// written (unless the error is ErrCommitUnknown).
func (s *Store) writeGroupSQLite(ctx context.Context, ops []deliveryOp) error {
	if err := s.sqlite.prepare(ctx); err != nil {
		return fmt.Errorf("delivery group: %w", err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		g := &deliveryGroup{msgs: map[string]*lockedMessage{}}
		starts := startIDs(ops)
		for _, id := range groupIDs(ops) {
			_, started := slices.BinarySearch(starts, id)
			m, err := s.sqlite.read(ctx, tx, id, started)
			if err != nil {
				return fmt.Errorf("delivery group: %w", err)
			}
			if m != nil {
				g.msgs[id] = m
			}
		}
		payloads, err := s.sqlite.payloads(ctx, tx, starts)
		if err != nil {
			return fmt.Errorf("delivery group: %w", err)
		}
		g.apply(ops)
		if err := s.sqlite.write(ctx, tx, g, micros(s.now())); err != nil {
			return fmt.Errorf("delivery group: %w", err)
		}
		givePayloads(ops, payloads)
		return nil
	})
}

// payloads reads the payloads of the messages ids.
func (q *sqliteDelivery) payloads(ctx context.Context, tx *sql.Tx, ids []string) (map[string]Payload, error) {
	out := make(map[string]Payload, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	st, err := q.payload.in(ctx, tx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		var p Payload
		var text, html []byte
		err := st.QueryRowContext(ctx, id).Scan(&p.Request, &text, &html)
		if err != nil && err != sql.ErrNoRows {
			return nil, fmt.Errorf("payload of %s: %w", id, err)
		}
		p.Text, p.HTML = string(text), string(html)
		out[id] = p
	}
	return out, nil
}

// read reads a message and its recipients; nil when it does not exist.
func (q *sqliteDelivery) read(ctx context.Context, tx *sql.Tx, id string, started bool) (*lockedMessage, error) {
	st, err := q.message.in(ctx, tx)
	if err != nil {
		return nil, err
	}
	m, err := scanLocked(st.QueryRowContext(ctx, id))
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	if st, err = q.recipients.in(ctx, tx); err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, id, m.d.ProjectID, started)
	if err != nil {
		return nil, fmt.Errorf("recipients of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var rc DeliveryRecipient
		var reason sql.NullString
		if err := rows.Scan(&rc.Position, &rc.Email, &rc.Kind, &rc.Status, &reason); err != nil {
			return nil, fmt.Errorf("recipients of %s: %w", id, err)
		}
		m.addRecipient(rc, reason)
	}
	return m, rows.Err()
}

// write writes the group's changed rows.
func (q *sqliteDelivery) write(ctx context.Context, tx *sql.Tx, g *deliveryGroup, now int64) error {
	for _, id := range g.changedIDs() {
		if err := q.writeMessageRows(ctx, tx, g.msgs[id], now); err != nil {
			return err
		}
	}
	st, err := q.suppress.in(ctx, tx)
	if err != nil {
		return err
	}
	for _, sr := range g.suppressions {
		if _, err := st.ExecContext(ctx, sr.projectID, sr.email, sr.reason, sr.note, now); err != nil {
			return fmt.Errorf("suppress %s: %w", sr.email, err)
		}
	}
	return nil
}

// writeMessageRows writes one changed message: its recipients, its row
// and its events.
func (q *sqliteDelivery) writeMessageRows(ctx context.Context, tx *sql.Tx, m *lockedMessage, now int64) error {
	rs, err := q.writeRecipient.in(ctx, tx)
	if err != nil {
		return err
	}
	for _, rc := range m.d.Recipients {
		result, ok := m.results[rc.Position]
		if !ok {
			continue
		}
		o := m.outcomes[rc.Position]
		code := sql.NullInt64{Int64: int64(o.SMTPCode), Valid: o.SMTPCode != 0}
		if _, err := rs.ExecContext(ctx, m.d.ID, rc.Position, rc.Status, result, code, o.SMTPResponse, now); err != nil {
			return fmt.Errorf("recipient %d of %s: %w", rc.Position, m.d.ID, err)
		}
	}
	ms, err := q.writeMessage.in(ctx, tx)
	if err != nil {
		return err
	}
	if _, err := ms.ExecContext(ctx, m.d.ID, m.status(), m.attempts, m.dup, m.eventSeq,
		nullMicros(m.nextAttempt), now); err != nil {
		return fmt.Errorf("message %s: %w", m.d.ID, err)
	}
	es, err := q.insertEvent.in(ctx, tx)
	if err != nil {
		return err
	}
	for _, e := range m.events {
		if _, err := es.ExecContext(ctx, e.projectID, e.messageID, e.recipient, e.typ, e.seq, e.data, now); err != nil {
			return fmt.Errorf("event of %s: %w", m.d.ID, err)
		}
	}
	return nil
}
