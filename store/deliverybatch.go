package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Delivery writes in groups (batcher.go): concurrent StartDelivery calls
// are started in one transaction, and concurrent outcomes of
// single-recipient messages recorded together. On PostgreSQL a group of
// starts is a fixed number of set-based statements (lock the messages,
// read their recipients, read their suppressions, write), not five per
// message; a group of outcomes is one statement. On SQLite a group shares
// one write transaction (one WAL sync). When a group fails as a whole
// (a deadlock between two groups, a lost connection) nothing of it was
// written and each call is run on its own, so one call's failure is never
// another's.

// startRequest is one StartDelivery call waiting for its group.
type startRequest struct {
	id   string
	d    Delivery
	out  AttemptStart
	err  error
	done chan struct{}
}

// errDuplicateInGroup: the same message twice in one group; such a group
// is run call by call so that the second sees the first's writes.
var errDuplicateInGroup = errors.New("message twice in one group")

// distinct reports whether no two requests of group name the same message.
func distinct[R any](group []R, message func(R) string) bool {
	seen := make(map[string]bool, len(group))
	for _, r := range group {
		if seen[message(r)] {
			return false
		}
		seen[message(r)] = true
	}
	return true
}

// writeStarts starts the deliveries of group.
func (s *Store) writeStarts(ctx context.Context, group []*startRequest) {
	if len(group) > 1 && s.startTogether(ctx, group) == nil {
		for _, r := range group {
			close(r.done)
		}
		return
	}
	for _, r := range group {
		r.d, r.out, r.err = s.startOne(ctx, r.id)
		close(r.done)
	}
}

// startTogether starts every request of group in one transaction and
// sets each request's result; on error none is set and nothing is written.
func (s *Store) startTogether(ctx context.Context, group []*startRequest) error {
	if !distinct(group, func(r *startRequest) string { return r.id }) {
		return errDuplicateInGroup
	}
	type result struct {
		d   Delivery
		out AttemptStart
		err error
	}
	results := make([]result, len(group))
	err := inTxOn(ctx, s.bulk, func(tx *sql.Tx) error {
		if s.dialect == DialectPostgres {
			return s.startGroupPostgres(ctx, tx, group, func(i int, d Delivery, out AttemptStart, err error) {
				results[i] = result{d, out, err}
			})
		}
		for i, r := range group {
			d, out, err := s.startInTx(ctx, tx, r.id)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			results[i] = result{d, out, err}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, r := range group {
		r.d, r.out, r.err = results[i].d, results[i].out, results[i].err
	}
	return nil
}

// startPlan is one message's share of a group start.
type startPlan struct {
	d        Delivery
	out      AttemptStart
	evs      []eventInput
	statuses []string // every recipient's status after the attempt
	byStatus map[string][]int
}

// startGroupPostgres is startInTx for a whole group in set-based
// statements: the message rows are locked in id order (so two groups never
// wait on each other in a cycle), and the recipients and suppressions read
// after the locks are held.
func (s *Store) startGroupPostgres(ctx context.Context, tx *sql.Tx, group []*startRequest,
	set func(i int, d Delivery, out AttemptStart, err error)) error {
	ids := make([]string, len(group))
	for i, r := range group {
		ids[i] = r.id
	}
	ds, err := lockDeliveries(ctx, tx, ids)
	if err != nil {
		return err
	}
	if err := groupRecipients(ctx, tx, ids, ds); err != nil {
		return err
	}
	suppressed, err := groupSuppressions(ctx, tx, ds)
	if err != nil {
		return err
	}
	plans := planStarts(ds, suppressed)
	if err := s.writeStartPlans(ctx, tx, plans); err != nil {
		return err
	}
	for i, id := range ids {
		d, ok := ds[id]
		switch {
		case !ok:
			set(i, Delivery{}, AttemptStart{}, fmt.Errorf("begin attempt %s: %w", id, ErrNotFound))
		case plans[id] != nil:
			set(i, d, plans[id].out, nil)
		default:
			set(i, d, AttemptStart{}, nil)
		}
	}
	return nil
}

// lockDeliveries reads and locks the messages of ids (missing ones are
// absent from the map).
func lockDeliveries(ctx context.Context, tx *sql.Tx, ids []string) (map[string]Delivery, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM messages WHERE id = ANY($1)
		ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return nil, fmt.Errorf("begin attempts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]Delivery, len(ids))
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("begin attempts: %w", err)
		}
		out[d.ID] = d
	}
	return out, rows.Err()
}

// groupRecipients reads the recipients of the messages of ids into ds.
func groupRecipients(ctx context.Context, tx *sql.Tx, ids []string, ds map[string]Delivery) error {
	rows, err := tx.QueryContext(ctx, `SELECT message_id, position, email, kind, status FROM recipients
		WHERE message_id = ANY($1) ORDER BY message_id, position`, ids)
	if err != nil {
		return fmt.Errorf("recipients: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r DeliveryRecipient
		if err := rows.Scan(&id, &r.Position, &r.Email, &r.Kind, &r.Status); err != nil {
			return fmt.Errorf("recipients: %w", err)
		}
		if d, ok := ds[id]; ok {
			d.Recipients = append(d.Recipients, r)
			ds[id] = d
		}
	}
	return rows.Err()
}

// groupSuppressions maps "project\x00email" to the reason for every
// pending recipient of ds on its project's suppression list.
func groupSuppressions(ctx context.Context, tx *sql.Tx, ds map[string]Delivery) (map[string]string, error) {
	var projects, emails []string
	for _, d := range ds {
		for _, r := range d.Recipients {
			if isPending(r.Status) {
				projects, emails = append(projects, d.ProjectID), append(emails, normEmail(r.Email))
			}
		}
	}
	out := map[string]string{}
	if len(emails) == 0 {
		return out, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT project_id, email, reason FROM suppressions
		WHERE (project_id, email) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, projects, emails)
	if err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var project, email, reason string
		if err := rows.Scan(&project, &email, &reason); err != nil {
			return nil, fmt.Errorf("suppressions: %w", err)
		}
		out[project+"\x00"+email] = reason
	}
	return out, rows.Err()
}

// planStarts decides, per message with a pending recipient, what
// markAttempt would.
func planStarts(ds map[string]Delivery, suppressed map[string]string) map[string]*startPlan {
	plans := map[string]*startPlan{}
	for id, d := range ds {
		if !anyPending(d.Recipients) {
			continue
		}
		mine := map[string]string{}
		var pending []DeliveryRecipient
		for _, r := range d.Recipients {
			if !isPending(r.Status) {
				continue
			}
			pending = append(pending, r)
			if reason, ok := suppressed[d.ProjectID+"\x00"+normEmail(r.Email)]; ok {
				mine[normEmail(r.Email)] = reason
			}
		}
		p := &startPlan{d: d, statuses: statusesAfterAttempt(d.Recipients, mine)}
		p.out, p.evs, p.byStatus = decideAttempt(pending, mine)
		plans[id] = p
	}
	return plans
}

// writeStartPlans writes the plans in one statement (the recipients'
// UPDATE as a data-modifying CTE; the message row's attempt count,
// status, flag and event numbers in the same UPDATE), then the events of
// suppressed recipients.
func (s *Store) writeStartPlans(ctx context.Context, tx *sql.Tx, plans map[string]*startPlan) error {
	if len(plans) == 0 {
		return nil
	}
	ids := make([]string, 0, len(plans))
	for id := range plans {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rIDs, rStatuses, mStatuses []string
	var rPositions, mEvents []int
	var mDups []bool
	for _, id := range ids {
		p := plans[id]
		for _, st := range []string{StatusSending, StatusSuppressed} {
			for _, pos := range p.byStatus[st] {
				rIDs, rPositions, rStatuses = append(rIDs, id), append(rPositions, pos), append(rStatuses, st)
			}
		}
		mStatuses = append(mStatuses, SummarizeStatus(p.statuses))
		mDups, mEvents = append(mDups, p.out.Interrupted), append(mEvents, len(p.evs))
	}
	now := micros(s.now())
	rows, err := tx.QueryContext(ctx, `WITH v AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS v(mid, pos, st)),
		r AS (UPDATE recipients SET status = v.st, updated_at = $4 FROM v
			WHERE recipients.message_id = v.mid AND recipients.position = v.pos)
		UPDATE messages SET attempts = attempts + 1, updated_at = $4, status = w.st,
			possibly_duplicated = possibly_duplicated OR w.dup, event_seq = event_seq + w.nev
		FROM unnest($5::text[], $6::text[], $7::bool[], $8::int[]) AS w(mid, st, dup, nev)
		WHERE messages.id = w.mid RETURNING messages.id, messages.event_seq`,
		rIDs, rPositions, rStatuses, now, ids, mStatuses, mDups, mEvents)
	if err != nil {
		return fmt.Errorf("mark attempts: %w", err)
	}
	last, err := scanSequences(rows)
	if err != nil {
		return fmt.Errorf("mark attempts: %w", err)
	}
	for _, id := range ids {
		p := plans[id]
		if len(p.evs) == 0 {
			continue
		}
		if err := s.insertEvents(ctx, tx, p.d.ProjectID, id, p.evs, last[id]-int64(len(p.evs)), s.now()); err != nil {
			return err
		}
	}
	return nil
}

// scanSequences reads (message id, event_seq) rows.
func scanSequences(rows *sql.Rows) (map[string]int64, error) {
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		out[id] = seq
	}
	return out, rows.Err()
}

// outcomeRequest is one RecordAttemptOutcomes call waiting for its group.
type outcomeRequest struct {
	projectID string
	messageID string
	total     int
	outs      []Outcome
	err       error
	done      chan struct{}
}

// single reports whether the call is the outcome of a message's only
// recipient.
func (r *outcomeRequest) single() bool { return r.total == 1 && len(r.outs) == 1 }

// writeOutcomes records the outcomes of group.
func (s *Store) writeOutcomes(ctx context.Context, group []*outcomeRequest) {
	if len(group) > 1 && s.recordTogether(ctx, group) == nil {
		for _, r := range group {
			close(r.done)
		}
		return
	}
	for _, r := range group {
		r.err = s.recordOutcomesAlone(ctx, r)
		close(r.done)
	}
}

// recordTogether records every request of group in one statement
// (PostgreSQL, single-recipient outcomes only) or one transaction.
func (s *Store) recordTogether(ctx context.Context, group []*outcomeRequest) error {
	if !distinct(group, func(r *outcomeRequest) string { return r.messageID }) {
		return errDuplicateInGroup
	}
	if s.dialect == DialectPostgres {
		return s.recordOnlyOutcomesPostgres(ctx, group)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range group {
			if err := s.recordOutcomesInTx(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// recordOnlyOutcomesPostgres is recordOnlyOutcomePostgres for several
// messages in ONE statement: the recipients still sending are updated (and
// locked) first; for each of them the message takes the recipient's status
// and the event its next sequence number, and a suppression is added when
// asked.
func (s *Store) recordOnlyOutcomesPostgres(ctx context.Context, group []*outcomeRequest) error {
	n := len(group)
	var (
		mids, statuses, responses, projects, emails = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		events, datas, suppress, notes, lcEmails    = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		positions                                   = make([]int, n)
		codes                                       = make([]*int, n)
		dups                                        = make([]bool, n)
	)
	for i, r := range group {
		o := r.outs[0]
		mids[i], positions[i], statuses[i], responses[i] = r.messageID, o.Position, o.Status, o.SMTPResponse
		projects[i], emails[i], lcEmails[i], events[i] = r.projectID, o.Email, normEmail(o.Email), o.Event
		datas[i], suppress[i], dups[i] = "{}", o.Suppress, o.PossiblyDuplicated
		if len(o.EventData) > 0 {
			datas[i] = string(o.EventData)
		}
		if o.SMTPCode != 0 {
			code := o.SMTPCode
			codes[i] = &code
		}
		if o.Suppress != "" {
			notes[i] = "delivery " + r.messageID + ": " + truncate(o.SMTPResponse, 200)
		}
	}
	q := `WITH v AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[])
			AS v(mid, pos, st, code, resp, proj, email, lc, ev, data, sup, note, dup)),
		r AS (UPDATE recipients SET status = v.st, smtp_code = v.code, smtp_response = v.resp, updated_at = $14
			FROM v WHERE recipients.message_id = v.mid AND recipients.position = v.pos
			AND recipients.status = '` + StatusSending + `' RETURNING recipients.message_id),
		s AS (INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
			SELECT v.proj, v.lc, v.sup, v.note, $14, $14 FROM v JOIN r ON r.message_id = v.mid
			WHERE v.sup <> '' ON CONFLICT (project_id, email) DO NOTHING),
		m AS (UPDATE messages SET event_seq = event_seq + CASE WHEN v.ev <> '' THEN 1 ELSE 0 END, status = v.st,
			possibly_duplicated = possibly_duplicated OR v.dup
			FROM v JOIN r ON r.message_id = v.mid WHERE messages.id = v.mid RETURNING messages.id, messages.event_seq),
		e AS (` + insertEvent + ` SELECT v.proj, v.mid, v.email, v.ev, m.event_seq, v.data, $14
			FROM m JOIN v ON v.mid = m.id WHERE v.ev <> '')
		SELECT count(*) FROM m`
	var changed int
	err := s.bulk.QueryRowContext(ctx, q, mids, positions, statuses, codes, responses, projects, emails, lcEmails,
		events, datas, suppress, notes, dups, micros(s.now())).Scan(&changed)
	if err != nil {
		return fmt.Errorf("record outcomes of %s…: %w", strings.Join(mids[:min(3, n)], ", "), err)
	}
	return nil
}
