package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// DefaultSoftBounceLimit is InboundRecord.SoftBounceLimit when unset: the
// consecutive soft bounces that suppress an address.
const DefaultSoftBounceLimit = 3

// InboundEffect is one change a received message makes to one recipient of
// the message it answers. Package inbound decides the effects;
// RecordInbound applies them.
type InboundEffect struct {
	// Position is the recipient's index in the message; Email its address.
	// Email is "" (and Position ignored) when the recipient is unknown:
	// then only the event is written.
	Position int
	Email    string
	// Status, when set (StatusBounced or StatusComplained), becomes the
	// recipient's status if it is sent, sending or deferred, and
	// StatusComplained also if it is bounced: a complaint proves the
	// message was delivered after all (a soft bounce the provider or the
	// remote server got past), and the complaint must suppress. A
	// recipient in any other status (already complained, a bounce about
	// one already bounced, never sent) is left alone and the whole effect is skipped: no event,
	// no suppression, no count, so a second report about one recipient is
	// not counted twice.
	Status string
	// Event is the event type to append ("" for none) with its data.
	Event     string
	EventData json.RawMessage
	// Suppress, when set, adds the address to the project's suppression
	// list at once with this reason (an existing entry is kept).
	Suppress string
	// SoftBounce counts a soft bounce toward the address's consecutive soft
	// bounces (one per message: a second report on the same message does
	// not count). Reaching InboundRecord.SoftBounceLimit suppresses the
	// address with reason soft_bounces and starts the count over.
	SoftBounce bool
	// ResetSoftBounces sets the address's count back to zero: a delivery
	// was confirmed or the address answered.
	ResetSoftBounces bool
}

// InboundRecord is one received mailbox message with what it changes.
type InboundRecord struct {
	// ID is the new row's id; a UUIDv7 is made when empty.
	ID string
	// Mailbox names the mailbox; MailboxMessageID is the message's id in
	// it. Together they are unique: a second record is a duplicate.
	Mailbox          string
	MailboxMessageID string
	// ReceivedAt is when the poller read it; zero means now.
	ReceivedAt time.Time
	// Kind is the report kind (bounce, delayed, delivered, complaint,
	// auto_reply, reply, unknown).
	Kind string
	// ProjectID and MessageID name the message it answers; both "" when
	// unmatched. Recipient is the recipient it concerns, "" when unknown.
	ProjectID string
	MessageID string
	Recipient string
	// Summary is the report as JSON, without the raw message.
	Summary json.RawMessage
	// RawSize is the whole message's size; RawHead its first bytes as the
	// caller chose to keep them.
	RawSize int64
	RawHead []byte
	// Authenticated is true when a valid VERP token named the recipient
	// (an unmatched record is never authenticated). A record that is not
	// authenticated may only append events: any other effect makes
	// RecordInbound fail with ErrUnauthenticatedEffect, writing nothing.
	Authenticated bool
	// Effects are applied only when the message is matched.
	Effects []InboundEffect
	// SoftBounceLimit is how many soft bounces in a row suppress an
	// address. Default DefaultSoftBounceLimit (3).
	SoftBounceLimit int
}

// EffectResult says what RecordInbound did with one InboundEffect.
type EffectResult struct {
	// Applied is false when the effect was skipped (see
	// InboundEffect.Status).
	Applied bool
	// Suppressed is the reason of a suppression added now, or "".
	Suppressed string
}

// InboundResult is what RecordInbound wrote.
type InboundResult struct {
	// Duplicate is true when (Mailbox, MailboxMessageID) was already
	// recorded: nothing was written.
	Duplicate bool
	// Effects has one entry per InboundRecord.Effects.
	Effects []EffectResult
}

// Inbound is a stored received message.
type Inbound struct {
	ID               string
	ProjectID        string
	Mailbox          string
	MailboxMessageID string
	ReceivedAt       time.Time
	Kind             string
	Matched          bool
	// Authenticated is true when a valid VERP token named the recipient;
	// only such a message changed state.
	Authenticated bool
	MessageID     string
	Recipient     string
	Summary       json.RawMessage
	RawSize       int64
}

// InboundFilter narrows ListInbound.
type InboundFilter struct {
	// ProjectID lists that project's rows: those tied to its messages and
	// its provider feedback tied to none.
	ProjectID string
	// IncludeUnmatched also lists the rows of no project (mailbox mail
	// tied to no message; for admin keys).
	IncludeUnmatched bool
	// Matched, when set, keeps only matched (true) or unmatched rows.
	Matched *bool
	// Kind, when set, keeps only rows of that kind.
	Kind string
	Page
}

// InboundTarget is a message as inbound correlation needs it.
type InboundTarget struct {
	ID         string
	ProjectID  string
	FromDomain string
	Recipients []DeliveryRecipient
}

// LoadInboundTarget reads a message's project, sender domain and
// recipients. ErrNotFound when there is no such message.
func (s *Store) LoadInboundTarget(ctx context.Context, messageID string) (InboundTarget, error) {
	t := InboundTarget{ID: messageID}
	err := s.rdb.QueryRowContext(ctx, `SELECT project_id, from_domain FROM messages WHERE id = $1`, messageID).
		Scan(&t.ProjectID, &t.FromDomain)
	if err != nil {
		return InboundTarget{}, fmt.Errorf("inbound target %s: %w", messageID, notFound(err))
	}
	t.Recipients, err = deliveryRecipients(ctx, s.rdb, messageID)
	if err != nil {
		return InboundTarget{}, err
	}
	return t, nil
}

// InboundSeen reports whether the mailbox message was already recorded.
func (s *Store) InboundSeen(ctx context.Context, mailbox, mailboxMessageID string) (bool, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM inbound WHERE mailbox = $1 AND mailbox_message_id = $2`,
		mailbox, mailboxMessageID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("inbound seen: %w", err)
	}
	return n > 0, nil
}

// RecordInbound writes a received message and, when it is matched, its
// effects (recipient statuses, events, suppressions, soft-bounce counts)
// and the message status, all in one transaction. The row is the
// "processed" record: recording the same (Mailbox, MailboxMessageID) again
// writes nothing and reports Duplicate, so a poller that crashed before
// flagging the message in its mailbox never makes a second event.
func (s *Store) RecordInbound(ctx context.Context, rec InboundRecord) (InboundResult, error) {
	if rec.Mailbox == "" || rec.MailboxMessageID == "" || rec.Kind == "" {
		return InboundResult{}, errors.New("record inbound: mailbox, mailbox message id and kind are required")
	}
	if rec.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return InboundResult{}, fmt.Errorf("record inbound: %w", err)
		}
		rec.ID = id.String()
	}
	if rec.SoftBounceLimit <= 0 {
		rec.SoftBounceLimit = DefaultSoftBounceLimit
	}
	var out InboundResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		fresh, err := insertInbound(ctx, tx, rec, now)
		if err != nil || !fresh {
			out.Duplicate = !fresh
			return err
		}
		if rec.ProjectID == "" || rec.MessageID == "" || len(rec.Effects) == 0 {
			return nil
		}
		out.Effects, err = s.applyEffects(ctx, tx, rec, now)
		return err
	})
	if err != nil {
		return InboundResult{}, err
	}
	return out, nil
}

// insertInbound adds the row; false when it already exists.
func insertInbound(ctx context.Context, tx *sql.Tx, rec InboundRecord, now time.Time) (bool, error) {
	received := rec.ReceivedAt
	if received.IsZero() {
		received = now
	}
	summary := "{}"
	if len(rec.Summary) > 0 {
		summary = string(rec.Summary)
	}
	matched := rec.ProjectID != "" && rec.MessageID != ""
	res, err := tx.ExecContext(ctx, `INSERT INTO inbound (id, project_id, mailbox, mailbox_message_id, received_at,
		kind, matched, authenticated, message_id, recipient, summary, raw_size, raw_head)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (mailbox, mailbox_message_id) DO NOTHING`,
		rec.ID, nullString(rec.ProjectID), rec.Mailbox, rec.MailboxMessageID, micros(received), rec.Kind, matched,
		matched && rec.Authenticated, nullString(rec.MessageID), nullString(rec.Recipient), summary, rec.RawSize, rec.RawHead)
	if err != nil {
		return false, fmt.Errorf("record inbound %s/%s: %w", rec.Mailbox, rec.MailboxMessageID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record inbound %s/%s: %w", rec.Mailbox, rec.MailboxMessageID, err)
	}
	return n == 1, nil
}

// applyEffects writes rec's effects, their events and the message status.
func (s *Store) applyEffects(ctx context.Context, tx *sql.Tx, rec InboundRecord, now time.Time) ([]EffectResult, error) {
	// The message row is locked before its recipients, in the order the
	// delivery writer locks them, so that the two never deadlock.
	if s.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM messages WHERE id = $1 FOR UPDATE`, rec.MessageID); err != nil {
			return nil, fmt.Errorf("lock message %s: %w", rec.MessageID, err)
		}
	}
	out := make([]EffectResult, len(rec.Effects))
	var evs []eventInput
	changed := false
	for i, ef := range rec.Effects {
		if !rec.Authenticated && changesState(ef) {
			return nil, fmt.Errorf("record inbound %s/%s: %w", rec.Mailbox, rec.MailboxMessageID, ErrUnauthenticatedEffect)
		}
		r, err := applyEffect(ctx, tx, rec, ef, now)
		if err != nil {
			return nil, err
		}
		out[i] = r
		if r.Applied && ef.Event != "" {
			evs = append(evs, eventInput{Recipient: ef.Email, Type: ef.Event, Data: ef.EventData})
		}
		changed = changed || (r.Applied && ef.Status != "")
	}
	if err := s.appendEvents(ctx, tx, rec.ProjectID, rec.MessageID, evs, now); err != nil {
		return nil, err
	}
	if !changed {
		return out, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET updated_at = $2 WHERE id = $1`,
		rec.MessageID, micros(now)); err != nil {
		return nil, fmt.Errorf("touch message %s: %w", rec.MessageID, err)
	}
	return out, refreshMessageStatus(ctx, tx, rec.MessageID)
}

// ErrUnauthenticatedEffect: RecordInbound was given a record that no VERP
// token authenticated with an effect beyond its event. Only an
// authenticated report may change a status, suppress an address or count
// soft bounces; anyone who saw a message's headers can quote them.
var ErrUnauthenticatedEffect = errors.New("an unauthenticated report can only append its event")

// changesState reports whether ef does more than append an event.
func changesState(ef InboundEffect) bool {
	return ef.Status != "" || ef.Suppress != "" || ef.SoftBounce || ef.ResetSoftBounces
}

// applyEffect changes one recipient's status, suppression and count.
func applyEffect(ctx context.Context, tx *sql.Tx, rec InboundRecord, ef InboundEffect, now time.Time) (EffectResult, error) {
	var r EffectResult
	if ef.Status != "" {
		if ef.Email == "" {
			return r, nil
		}
		ok, err := setInboundStatus(ctx, tx, rec.MessageID, ef, now)
		if err != nil || !ok {
			return r, err
		}
	}
	r.Applied = true
	if ef.Email == "" {
		return r, nil
	}
	var err error
	switch {
	case ef.Suppress != "":
		r.Suppressed, err = suppressInbound(ctx, tx, rec, ef.Email, ef.Suppress, now)
	case ef.SoftBounce:
		r.Suppressed, err = countSoftBounce(ctx, tx, rec, ef.Email, now)
	case ef.ResetSoftBounces:
		err = resetSoftBounces(ctx, tx, rec.ProjectID, ef.Email)
	}
	return r, err
}

// setInboundStatus moves a sent, sending or deferred recipient (or, for
// a complaint, a bounced one) to ef.Status; false when the recipient is
// in another status.
func setInboundStatus(ctx context.Context, tx *sql.Tx, messageID string, ef InboundEffect, now time.Time) (bool, error) {
	from := []any{StatusSent, StatusSending, StatusDeferred, StatusSent}
	if ef.Status == StatusComplained {
		from[3] = StatusBounced
	}
	res, err := tx.ExecContext(ctx, `UPDATE recipients SET status = $3, updated_at = $4
		WHERE message_id = $1 AND position = $2 AND status IN ($5, $6, $7, $8)`,
		append([]any{messageID, ef.Position, ef.Status, micros(now)}, from...)...)
	if err != nil {
		return false, fmt.Errorf("recipient %d of %s: %w", ef.Position, messageID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("recipient %d of %s: %w", ef.Position, messageID, err)
	}
	return n == 1, nil
}

// suppressInbound adds the address unless it is already suppressed; a
// suppression for soft bounces gives way to a stronger reason (a hard
// bounce, a complaint), so that clearing soft-bounce suppressions later
// does not mail an address that complained. It returns reason when it
// added or replaced the suppression.
func suppressInbound(ctx context.Context, tx *sql.Tx, rec InboundRecord, email, reason string, now time.Time) (string, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (project_id, email) DO UPDATE SET
			reason = excluded.reason, note = excluded.note, updated_at = excluded.updated_at
		WHERE suppressions.reason = $6 AND excluded.reason <> $6`,
		rec.ProjectID, normEmail(email), reason, "inbound "+rec.Kind+" about message "+rec.MessageID, micros(now),
		ReasonSoftBounces)
	if err != nil {
		return "", fmt.Errorf("suppress after inbound %s: %w", rec.MessageID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return "", err
	}
	if err := resetSoftBounces(ctx, tx, rec.ProjectID, email); err != nil {
		return "", err
	}
	return reason, nil
}

// countSoftBounce adds one to the address's consecutive soft bounces (not
// twice for one message) and suppresses it at the limit.
func countSoftBounce(ctx context.Context, tx *sql.Tx, rec InboundRecord, email string, now time.Time) (string, error) {
	var n int
	err := tx.QueryRowContext(ctx, `INSERT INTO soft_bounce_counts (project_id, email, count, last_message_id, updated_at)
		VALUES ($1, $2, 1, $3, $4)
		ON CONFLICT (project_id, email) DO UPDATE SET
			count = CASE WHEN soft_bounce_counts.last_message_id = excluded.last_message_id
				THEN soft_bounce_counts.count ELSE soft_bounce_counts.count + 1 END,
			last_message_id = excluded.last_message_id, updated_at = excluded.updated_at
		RETURNING count`, rec.ProjectID, normEmail(email), rec.MessageID, micros(now)).Scan(&n)
	if err != nil {
		return "", fmt.Errorf("count soft bounce: %w", err)
	}
	if n < rec.SoftBounceLimit {
		return "", nil
	}
	return suppressInbound(ctx, tx, rec, email, ReasonSoftBounces, now)
}

func resetSoftBounces(ctx context.Context, tx *sql.Tx, projectID, email string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM soft_bounce_counts WHERE project_id = $1 AND email = $2`,
		projectID, normEmail(email)); err != nil {
		return fmt.Errorf("reset soft bounces: %w", err)
	}
	return nil
}

// SoftBounceCount is the address's current count of consecutive soft
// bounces in the project.
func (s *Store) SoftBounceCount(ctx context.Context, projectID, email string) (int, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count FROM soft_bounce_counts WHERE project_id = $1 AND email = $2`,
		projectID, normEmail(email)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("soft bounce count: %w", err)
	}
	return n, nil
}

const inboundColumns = `id, project_id, mailbox, mailbox_message_id, received_at, kind, matched, authenticated,
	message_id, recipient, summary, raw_size`

// ListInbound lists received messages matching f, newest first. The
// returned cursor fetches the next page; it is "" after the last page.
func (s *Store) ListInbound(ctx context.Context, f InboundFilter) ([]Inbound, string, error) {
	c, err := inboundConds(f)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(f.Page)
	q := `SELECT ` + inboundColumns + ` FROM inbound` + c.sql() +
		` ORDER BY received_at DESC, id DESC LIMIT ` + c.arg(limit+1)
	list, err := queryInbound(ctx, s.rdb, q, c.args)
	if err != nil {
		return nil, "", fmt.Errorf("list inbound: %w", err)
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		last := list[limit-1]
		next = cursor{T: micros(last.ReceivedAt), K: last.ID}.encode()
	}
	return list, next, nil
}

// inboundConds turns f into WHERE conditions.
func inboundConds(f InboundFilter) (*conds, error) {
	cur, ok, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	c := &conds{}
	if f.IncludeUnmatched {
		c.add("(project_id = " + c.arg(f.ProjectID) + " OR project_id IS NULL)")
	} else {
		c.add("project_id = " + c.arg(f.ProjectID))
	}
	if f.Matched != nil {
		c.add("matched = " + c.arg(*f.Matched))
	}
	if f.Kind != "" {
		c.add("kind = " + c.arg(f.Kind))
	}
	if ok {
		t := c.arg(cur.T)
		c.add("(received_at < " + t + " OR (received_at = " + t + " AND id < " + c.arg(cur.K) + "))")
	}
	return c, nil
}

func queryInbound(ctx context.Context, q querier, query string, args []any) ([]Inbound, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Inbound
	for rows.Next() {
		var in Inbound
		var project, messageID, recipient sql.NullString
		var received int64
		var summary string
		if err := rows.Scan(&in.ID, &project, &in.Mailbox, &in.MailboxMessageID, &received, &in.Kind,
			&in.Matched, &in.Authenticated, &messageID, &recipient, &summary, &in.RawSize); err != nil {
			return nil, err
		}
		in.ProjectID, in.MessageID, in.Recipient = project.String, messageID.String, recipient.String
		in.ReceivedAt = fromMicros(received)
		in.Summary = json.RawMessage(summary)
		out = append(out, in)
	}
	return out, rows.Err()
}

// nullString stores "" as NULL.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// InboundOriginal is the kept start of received mail id (RawHead) and its
// whole size, when f (its ProjectID and IncludeUnmatched) may see it;
// ErrNotFound otherwise.
func (s *Store) InboundOriginal(ctx context.Context, f InboundFilter, id string) (head []byte, size int64, err error) {
	c, err := inboundConds(InboundFilter{ProjectID: f.ProjectID, IncludeUnmatched: f.IncludeUnmatched})
	if err != nil {
		return nil, 0, err
	}
	c.add("id = " + c.arg(id))
	row := s.rdb.QueryRowContext(ctx, `SELECT raw_head, raw_size FROM inbound`+c.sql(), c.args...)
	if err := row.Scan(&head, &size); err != nil {
		return nil, 0, fmt.Errorf("inbound original: %w", notFound(err))
	}
	return head, size, nil
}
