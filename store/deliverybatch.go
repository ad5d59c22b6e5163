package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Delivery writes in groups (batcher.go): concurrent StartDelivery calls
// and outcomes (on PostgreSQL those of single-recipient messages) go to
// one writer, which writes each group it takes in one transaction. On
// PostgreSQL that is two pipelined round trips whatever the group's size
// (startpipeline.go), not five statements per message: the starts'
// statement and the outcomes' statement share the second one and its
// COMMIT. On SQLite the group shares one write transaction (one WAL sync,
// and each hot page written to the WAL once). When a group fails as a
// whole (a deadlock, a lost connection) nothing of it was written: its
// starts are then written together, its outcomes together, and if that
// fails too each call on its own, so one call's failure is never
// another's.

// deliveryOp is one call waiting for the delivery writer: a start or an
// outcome.
type deliveryOp struct {
	start   *startRequest
	outcome *outcomeRequest
}

// writeDeliveries writes group: all of it in one transaction when it
// holds both kinds, else (or when that fails) each kind apart.
func (s *Store) writeDeliveries(ctx context.Context, group []deliveryOp) {
	var starts []*startRequest
	var outcomes []*outcomeRequest
	for _, op := range group {
		if op.start != nil {
			starts = append(starts, op.start)
		} else {
			outcomes = append(outcomes, op.outcome)
		}
	}
	if len(starts) > 0 && len(outcomes) > 0 && s.writeBoth(ctx, starts, outcomes) == nil {
		return
	}
	if len(starts) > 0 {
		s.writeStarts(ctx, starts)
	}
	if len(outcomes) > 0 {
		s.writeOutcomes(ctx, outcomes)
	}
}

// writeBoth starts starts and records outcomes in one transaction and
// answers every request; on error nothing was written and none is
// answered.
func (s *Store) writeBoth(ctx context.Context, starts []*startRequest, outcomes []*outcomeRequest) error {
	ids := make([]string, 0, len(starts)+len(outcomes))
	for _, r := range starts {
		ids = append(ids, r.id)
	}
	for _, r := range outcomes {
		ids = append(ids, r.messageID)
	}
	if !distinct(ids, func(id string) string { return id }) {
		return errDuplicateInGroup
	}
	if err := s.startTogether(ctx, starts, outcomes); err != nil {
		return err
	}
	for _, r := range starts {
		close(r.done)
	}
	for _, r := range outcomes {
		close(r.done)
	}
	return nil
}

// startRequest is one StartDelivery call waiting for its group.
type startRequest struct {
	id        string
	firstOnly bool // StartFirstDelivery
	d         Delivery
	out       AttemptStart
	err       error
	done      chan struct{}
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
	// On PostgreSQL even one start goes the grouped way: two round trips
	// instead of startOne's six.
	together := len(group) > 1 || s.dialect == DialectPostgres
	if together && s.startTogether(ctx, group, nil) == nil {
		for _, r := range group {
			close(r.done)
		}
		return
	}
	for _, r := range group {
		r.d, r.out, r.err = s.startOne(ctx, r)
		close(r.done)
	}
}

// startTogether starts every request of group in one transaction and
// sets each request's result; on error none is set and nothing is written.
// The outcomes, if any, are recorded in the same transaction (on
// PostgreSQL they must all be single()); their requests are not answered
// here.
func (s *Store) startTogether(ctx context.Context, group []*startRequest, outcomes []*outcomeRequest) error {
	if !distinct(group, func(r *startRequest) string { return r.id }) {
		return errDuplicateInGroup
	}
	type result struct {
		d   Delivery
		out AttemptStart
		err error
	}
	results := make([]result, len(group))
	record := func(i int, d Delivery, out AttemptStart, err error) { results[i] = result{d, out, err} }
	var err error
	if s.dialect == DialectPostgres {
		err = s.startGroupPostgres(ctx, group, outcomes, record)
	} else {
		err = inTxOn(ctx, s.bulk, func(tx *sql.Tx) error {
			for i, r := range group {
				d, out, err := s.startInTx(ctx, tx, r.id, r.firstOnly)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				record(i, d, out, err)
			}
			return s.recordAllInTx(ctx, tx, outcomes)
		})
	}
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

// planStarts decides, per message with a pending recipient, what
// markAttempt would; a message in firstOnly that was attempted before gets
// no plan (StartFirstDelivery).
func planStarts(ds map[string]Delivery, suppressed map[string]string, firstOnly map[string]bool) map[string]*startPlan {
	plans := map[string]*startPlan{}
	for id, d := range ds {
		if !anyPending(d.Recipients) || (firstOnly[id] && d.Attempts > 0) {
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
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.recordAllInTx(ctx, tx, group) })
}

// recordAllInTx records every request of group inside tx.
func (s *Store) recordAllInTx(ctx context.Context, tx *sql.Tx, group []*outcomeRequest) error {
	for _, r := range group {
		if err := s.recordOutcomesInTx(ctx, tx, r); err != nil {
			return err
		}
	}
	return nil
}

// groupOutcomesStatement is recordOnlyOutcomesPostgres's statement.
const groupOutcomesStatement = `WITH v AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::text[],
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

// recordOnlyOutcomesPostgres is recordOnlyOutcomePostgres for several
// messages in ONE statement: the recipients still sending are updated (and
// locked) first; for each of them the message takes the recipient's status
// and the event its next sequence number, and a suppression is added when
// asked.
func (s *Store) recordOnlyOutcomesPostgres(ctx context.Context, group []*outcomeRequest) error {
	var changed int
	err := s.bulk.QueryRowContext(ctx, groupOutcomesStatement, s.groupOutcomesArgs(group)...).Scan(&changed)
	if err != nil {
		return fmt.Errorf("record outcomes of %s…: %w", outcomeIDs(group), err)
	}
	return nil
}

// outcomeIDs names the first few messages of group, for errors.
func outcomeIDs(group []*outcomeRequest) string {
	ids := make([]string, 0, 3)
	for _, r := range group[:min(3, len(group))] {
		ids = append(ids, r.messageID)
	}
	return strings.Join(ids, ", ")
}

// groupOutcomesArgs are groupOutcomesStatement's arguments for group.
func (s *Store) groupOutcomesArgs(group []*outcomeRequest) []any {
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
	return []any{mids, positions, statuses, codes, responses, projects, emails, lcEmails,
		events, datas, suppress, notes, dups, micros(s.now())}
}
