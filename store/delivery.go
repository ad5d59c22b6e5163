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
	Recipients         []DeliveryRecipient
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

// StartDelivery loads a message for sending and, when a recipient is still
// pending, records the attempt, all in one transaction: the message row is
// locked first (SELECT … FOR UPDATE on PostgreSQL; SQLite's write
// transaction is exclusive), so the recipients are read once under that
// lock; pending recipients now on the suppression list become suppressed
// (with a message.suppressed event), the others sending, and the message's
// attempt count grows. With no pending recipient nothing changes and the
// AttemptStart is empty. The Delivery holds the attempt count and the
// recipients' statuses from before the attempt. ErrNotFound when the
// message does not exist. Concurrent calls are written together
// (deliverybatch.go).
func (s *Store) StartDelivery(ctx context.Context, id string) (Delivery, AttemptStart, error) {
	return s.submitStart(ctx, id, false)
}

// StartFirstDelivery is StartDelivery for a message's first attempt only,
// as a batch send task makes it: when the message has pending recipients
// but its attempt count is not zero (an earlier run of the batch deferred
// it, held it back or was killed while sending it), nothing is written and
// the AttemptStart has only Attempted set. The check is made under the
// message's lock, so a batch task and the message's own send task never
// both start the same message.
func (s *Store) StartFirstDelivery(ctx context.Context, id string) (Delivery, AttemptStart, error) {
	return s.submitStart(ctx, id, true)
}

// submitStart hands a start to the delivery writer and waits for it.
func (s *Store) submitStart(ctx context.Context, id string, firstOnly bool) (Delivery, AttemptStart, error) {
	r := &startRequest{id: id, firstOnly: firstOnly, done: make(chan struct{})}
	s.deliveries.submit(ctx, deliveryOp{start: r})
	<-r.done
	return r.d, r.out, r.err
}

// startOne is a start in a transaction of its own.
func (s *Store) startOne(ctx context.Context, r *startRequest) (Delivery, AttemptStart, error) {
	var d Delivery
	var out AttemptStart
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		d, out, err = s.startInTx(ctx, tx, r.id, r.firstOnly)
		return err
	})
	if err != nil {
		return Delivery{}, AttemptStart{}, err
	}
	return d, out, nil
}

// startInTx is a start's work inside tx; firstOnly as StartFirstDelivery.
func (s *Store) startInTx(ctx context.Context, tx *sql.Tx, id string, firstOnly bool) (Delivery, AttemptStart, error) {
	d, err := s.lockDelivery(ctx, tx, id)
	if err != nil {
		return Delivery{}, AttemptStart{}, err
	}
	if d.Recipients, err = deliveryRecipients(ctx, tx, id); err != nil {
		return Delivery{}, AttemptStart{}, err
	}
	if !anyPending(d.Recipients) {
		return d, AttemptStart{}, nil
	}
	if firstOnly && d.Attempts > 0 {
		return d, AttemptStart{Attempted: true}, nil
	}
	out, err := s.markAttempt(ctx, tx, d.ProjectID, id, d.Recipients, s.now())
	return d, out, err
}

// deliveryColumns are the messages columns scanDelivery reads.
const deliveryColumns = `id, project_id, key_id, from_domain, tags, metadata, send_at, created_at,
	possibly_duplicated, attempts`

// lockDelivery reads a message for sending, locking its row on PostgreSQL.
func (s *Store) lockDelivery(ctx context.Context, tx *sql.Tx, id string) (Delivery, error) {
	q := `SELECT ` + deliveryColumns + ` FROM messages WHERE id = $1 FOR UPDATE`
	if s.dialect == DialectSQLite {
		q = `SELECT ` + deliveryColumns + ` FROM messages WHERE id = $1`
	}
	d, err := scanDelivery(tx.QueryRowContext(ctx, q, id))
	if err != nil {
		return Delivery{}, fmt.Errorf("begin attempt %s: %w", id, notFound(err))
	}
	return d, nil
}

// scanDelivery scans deliveryColumns.
func scanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var tags, metadata string
	var sendAt sql.NullInt64
	var created int64
	if err := row.Scan(&d.ID, &d.ProjectID, &d.KeyID, &d.FromDomain, &tags, &metadata, &sendAt, &created,
		&d.PossiblyDuplicated, &d.Attempts); err != nil {
		return Delivery{}, err
	}
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s tags: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(metadata), &d.Metadata); err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s metadata: %w", d.ID, err)
	}
	d.SendAt, d.CreatedAt = timePtr(sendAt), fromMicros(created)
	return d, nil
}

// anyPending reports whether a recipient may still be sent.
func anyPending(rs []DeliveryRecipient) bool {
	for _, r := range rs {
		if isPending(r.Status) {
			return true
		}
	}
	return false
}

func isPending(status string) bool {
	switch status {
	case StatusQueued, StatusScheduled, StatusDeferred, StatusSending:
		return true
	}
	return false
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

// markAttempt applies StartDelivery's decisions to the rows: all are every
// recipient of the message (read under the row lock); the pending ones
// become sending or suppressed, and the message status follows from the
// new statuses without reading them back.
func (s *Store) markAttempt(ctx context.Context, tx *sql.Tx, projectID, id string, all []DeliveryRecipient,
	now time.Time) (AttemptStart, error) {
	var pending []DeliveryRecipient
	for _, r := range all {
		if isPending(r.Status) {
			pending = append(pending, r)
		}
	}
	suppressed, err := suppressedIn(ctx, tx, projectID, pending)
	if err != nil {
		return AttemptStart{}, err
	}
	out, evs, byStatus := decideAttempt(pending, suppressed)
	status := SummarizeStatus(statusesAfterAttempt(all, suppressed))
	if err := s.applyAttempt(ctx, tx, id, byStatus, status, out.Interrupted, now); err != nil {
		return out, err
	}
	return out, s.appendEvents(ctx, tx, projectID, id, evs, now)
}

// statusesAfterAttempt is every recipient's status once an attempt has
// begun: pending ones become sending, or suppressed when their address
// (lower case) is in suppressed.
func statusesAfterAttempt(all []DeliveryRecipient, suppressed map[string]string) []string {
	statuses := make([]string, len(all))
	for i, r := range all {
		statuses[i] = r.Status
		if isPending(r.Status) {
			statuses[i] = StatusSending
			if _, ok := suppressed[normEmail(r.Email)]; ok {
				statuses[i] = StatusSuppressed
			}
		}
	}
	return statuses
}

// applyAttempt writes the recipients' new statuses (positions by status)
// and the message's, and counts the attempt. On PostgreSQL that is one statement (the recipients'
// UPDATEs as data-modifying CTEs) unless there are many positions.
func (s *Store) applyAttempt(ctx context.Context, tx *sql.Tx, id string, byStatus map[string][]int, status string,
	dup bool, now time.Time) error {
	if s.dialect == DialectPostgres && len(byStatus[StatusSending])+len(byStatus[StatusSuppressed]) <= 1000 {
		return applyAttemptPostgres(ctx, tx, id, byStatus, status, dup, now)
	}
	for _, st := range []string{StatusSending, StatusSuppressed} {
		if err := markRecipients(ctx, tx, id, byStatus[st], st, now); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET attempts = attempts + 1, updated_at = $2 WHERE id = $1`,
		id, micros(now)); err != nil {
		return fmt.Errorf("begin attempt %s: %w", id, err)
	}
	return setMessageStatus(ctx, tx, id, status, dup)
}

func applyAttemptPostgres(ctx context.Context, tx *sql.Tx, id string, byStatus map[string][]int, status string,
	dup bool, now time.Time) error {
	c := &conds{}
	idArg, at := c.arg(id), c.arg(micros(now))
	var ctes []string
	for _, st := range []string{StatusSending, StatusSuppressed} {
		if len(byStatus[st]) == 0 {
			continue
		}
		ph := make([]string, len(byStatus[st]))
		for i, p := range byStatus[st] {
			ph[i] = c.arg(p)
		}
		ctes = append(ctes, fmt.Sprintf(`r%d AS (UPDATE recipients SET status = %s, updated_at = %s
			WHERE message_id = %s AND position IN (%s))`, len(ctes), c.arg(st), at, idArg, strings.Join(ph, ", ")))
	}
	q := `UPDATE messages SET attempts = attempts + 1, updated_at = ` + at + `, status = ` + c.arg(status)
	if dup {
		q += `, possibly_duplicated = ` + c.arg(true)
	}
	q += ` WHERE id = ` + idArg
	if len(ctes) > 0 {
		q = `WITH ` + strings.Join(ctes, ", ") + ` ` + q
	}
	if _, err := tx.ExecContext(ctx, q, c.args...); err != nil {
		return fmt.Errorf("mark attempt of %s: %w", id, err)
	}
	return nil
}

// decideAttempt splits the pending recipients into those to send and those
// suppressed (with their events), and groups their positions by new status.
func decideAttempt(pending []DeliveryRecipient, suppressed map[string]string) (AttemptStart, []eventInput, map[string][]int) {
	var out AttemptStart
	var evs []eventInput
	byStatus := map[string][]int{}
	for _, r := range pending {
		if reason, ok := suppressed[normEmail(r.Email)]; ok {
			out.Suppressed = append(out.Suppressed, r.Email)
			data, _ := json.Marshal(map[string]string{"reason": reason})
			evs = append(evs, eventInput{Recipient: r.Email, Type: EventSuppressed, Data: data})
			byStatus[StatusSuppressed] = append(byStatus[StatusSuppressed], r.Position)
			continue
		}
		out.Send = append(out.Send, r)
		out.Interrupted = out.Interrupted || r.Status == StatusSending
		byStatus[StatusSending] = append(byStatus[StatusSending], r.Position)
	}
	return out, evs, byStatus
}

// markRecipients sets the status of the recipients at positions, in
// as few statements as the parameter limit allows.
func markRecipients(ctx context.Context, tx *sql.Tx, id string, positions []int, status string, now time.Time) error {
	const chunk = 1000
	for len(positions) > 0 {
		n := min(chunk, len(positions))
		args := []any{id, status, micros(now)}
		for _, p := range positions[:n] {
			args = append(args, p)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE recipients SET status = $2, updated_at = $3
			WHERE message_id = $1 AND position IN (`+placeholders(4, n)+`)`, args...); err != nil {
			return fmt.Errorf("mark recipients of %s %s: %w", id, status, err)
		}
		positions = positions[n:]
	}
	return nil
}

// setMessageStatus sets a message's status and, when dup, flags it
// possibly duplicated (a flag is never cleared).
func setMessageStatus(ctx context.Context, tx *sql.Tx, id, status string, dup bool) error {
	q, args := `UPDATE messages SET status = $2 WHERE id = $1`, []any{id, status}
	if dup {
		q, args = `UPDATE messages SET status = $2, possibly_duplicated = $3 WHERE id = $1`, append(args, true)
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("message %s status: %w", id, err)
	}
	return nil
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
	return s.RecordAttemptOutcomes(ctx, projectID, messageID, 0, outs)
}

// RecordAttemptOutcomes is RecordOutcomes for a caller that knows the
// message has total recipients (their number never changes; 0 when
// unknown). When every one of them changed status here, the message status
// follows from outs without reading the recipients back.
func (s *Store) RecordAttemptOutcomes(ctx context.Context, projectID, messageID string, total int, outs []Outcome) error {
	r := &outcomeRequest{projectID: projectID, messageID: messageID, total: total, outs: outs, done: make(chan struct{})}
	if s.dialect == DialectPostgres && !r.single() {
		return s.recordOutcomesAlone(ctx, r)
	}
	s.deliveries.submit(ctx, deliveryOp{outcome: r})
	<-r.done
	return r.err
}

// recordOutcomesAlone is RecordAttemptOutcomes in a transaction (or on
// PostgreSQL for a single recipient, a statement) of its own.
func (s *Store) recordOutcomesAlone(ctx context.Context, r *outcomeRequest) error {
	if s.dialect == DialectPostgres && r.single() {
		return s.recordOnlyOutcomePostgres(ctx, r.projectID, r.messageID, r.outs[0])
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.recordOutcomesInTx(ctx, tx, r) })
}

// recordOutcomesInTx is RecordAttemptOutcomes's work inside tx.
func (s *Store) recordOutcomesInTx(ctx context.Context, tx *sql.Tx, r *outcomeRequest) error {
	projectID, messageID, total := r.projectID, r.messageID, r.total
	now := s.now()
	var evs []eventInput
	var statuses []string
	dup := false
	for _, o := range r.outs {
		changed, err := recordOutcome(ctx, tx, projectID, messageID, o, now)
		if err != nil {
			return err
		}
		if !changed {
			continue
		}
		statuses = append(statuses, o.Status)
		dup = dup || o.PossiblyDuplicated
		if o.Event != "" {
			evs = append(evs, eventInput{Recipient: o.Email, Type: o.Event, Data: o.EventData})
		}
	}
	if total == 0 || len(statuses) != total {
		var err error
		if statuses, err = allRecipientStatuses(ctx, tx, messageID); err != nil {
			return err
		}
	}
	return s.finishOutcomes(ctx, tx, projectID, messageID, SummarizeStatus(statuses), dup, evs, now)
}

// recordOnlyOutcomePostgres records the outcome of a message's only
// recipient as ONE statement of data-modifying CTEs (atomic on its own: one
// round trip and one commit instead of BEGIN, four statements and COMMIT).
// As in the transaction, the recipient row is updated (and locked) before
// the message row; nothing else changes unless the recipient was sending,
// and the message status is then the recipient's new one.
func (s *Store) recordOnlyOutcomePostgres(ctx context.Context, projectID, messageID string, o Outcome) error {
	c := &conds{}
	id, now := c.arg(messageID), c.arg(micros(s.now()))
	ctes := []string{`r AS (UPDATE recipients SET status = ` + c.arg(o.Status) + `, smtp_code = ` +
		c.arg(sql.NullInt64{Int64: int64(o.SMTPCode), Valid: o.SMTPCode != 0}) + `, smtp_response = ` +
		c.arg(o.SMTPResponse) + `, updated_at = ` + now + ` WHERE message_id = ` + id + ` AND position = ` +
		c.arg(o.Position) + ` AND status = ` + c.arg(StatusSending) + ` RETURNING 1)`}
	if o.Suppress != "" {
		ctes = append(ctes, `s AS (INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
			SELECT `+c.arg(projectID)+`, `+c.arg(normEmail(o.Email))+`, `+c.arg(o.Suppress)+`, `+
			c.arg("delivery "+messageID+": "+truncate(o.SMTPResponse, 200))+`, `+now+`, `+now+
			` FROM r ON CONFLICT (project_id, email) DO NOTHING)`)
	}
	events := 0
	if o.Event != "" {
		events = 1
	}
	set := `event_seq = event_seq + ` + c.arg(events) + `, status = ` + c.arg(o.Status)
	if o.PossiblyDuplicated {
		set += `, possibly_duplicated = ` + c.arg(true)
	}
	ctes = append(ctes, `m AS (UPDATE messages SET `+set+` WHERE id = `+id+
		` AND EXISTS (SELECT 1 FROM r) RETURNING event_seq)`)
	if events == 1 {
		data := "{}"
		if len(o.EventData) > 0 {
			data = string(o.EventData)
		}
		ctes = append(ctes, `e AS (`+insertEvent+` SELECT `+c.arg(projectID)+`, `+id+`, `+c.arg(o.Email)+`, `+
			c.arg(o.Event)+`, m.event_seq, `+c.arg(data)+`, `+now+` FROM m)`)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `WITH `+strings.Join(ctes, ", ")+` SELECT count(*) FROM m`, c.args...).Scan(&n); err != nil {
		return fmt.Errorf("record outcome %d of %s: %w", o.Position, messageID, err)
	}
	return nil
}

// finishOutcomes sets the message status (and the possibly-duplicated
// flag) and reserves the events' sequence numbers in one UPDATE, then
// inserts the events.
func (s *Store) finishOutcomes(ctx context.Context, tx *sql.Tx, projectID, messageID, status string, dup bool,
	evs []eventInput, now time.Time) error {
	if len(evs) == 0 {
		return setMessageStatus(ctx, tx, messageID, status, dup)
	}
	q, args := `UPDATE messages SET event_seq = event_seq + $2, status = $3`, []any{messageID, int64(len(evs)), status}
	if dup {
		q, args = q+`, possibly_duplicated = $4`, append(args, true)
	}
	var last int64
	if err := tx.QueryRowContext(ctx, q+` WHERE id = $1 RETURNING event_seq`, args...).Scan(&last); err != nil {
		return fmt.Errorf("append events to %s: %w", messageID, notFound(err))
	}
	return s.insertEvents(ctx, tx, projectID, messageID, evs, last-int64(len(evs)), now)
}

// insertEvents inserts evs numbered from after+1 (the caller has already
// reserved the numbers by bumping messages.event_seq).
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, projectID, messageID string, evs []eventInput,
	after int64, now time.Time) error {
	args := make([]any, 0, len(evs)*eventCols)
	for i, ev := range evs {
		data := "{}"
		if len(ev.Data) > 0 {
			data = string(ev.Data)
		}
		args = append(args, projectID, messageID, ev.Recipient, ev.Type, after+int64(i)+1, data, micros(now))
	}
	if err := s.insertRows(ctx, tx, insertEvent, eventCols, args, ""); err != nil {
		return fmt.Errorf("append events to %s: %w", messageID, err)
	}
	return nil
}

// recipientStatuses reads every recipient's status, by position.
func allRecipientStatuses(ctx context.Context, tx *sql.Tx, id string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT status FROM recipients WHERE message_id = $1 ORDER BY position`, id)
	if err != nil {
		return nil, fmt.Errorf("message %s status: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			return nil, fmt.Errorf("message %s status: %w", id, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("message %s status: %w", id, err)
	}
	return out, nil
}

// recordOutcome updates one recipient still sending and adds its
// suppression; it reports whether the recipient changed.
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
