package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// On PostgreSQL a delivery group is one transaction of two round trips,
// each a pgx pipeline (the extended protocol's messages sent together,
// answered in order; the delivery writer is one goroutine, so its round
// trips bound the rate of every start and outcome):
//
//  1. BEGIN; lock the message rows in id order (so two groups never wait
//     on each other in a cycle); read their recipients, each with its
//     suppression reason. Under READ COMMITTED every statement takes its
//     own snapshot when it starts, and a pipeline runs its statements one
//     after the other, so the recipients are read after the locks are
//     held, as if they were separate round trips.
//  2. One statement writing every changed row (recipients, messages,
//     events, suppressions) from arrays, then COMMIT.
//
// The texts are fixed whatever the group's size (arrays, not lists of
// placeholders), so pgx prepares each once per connection and reuses it.
// database/sql has no pipelines, so this runs on the pgx connection under
// the pool's (sql.Conn.Raw, pgx's stdlib.Conn). Any error rolls back; a
// connection left in a transaction is dropped by the pool (pgx's stdlib
// ResetSession).

// groupPlanner is the one planner setting of a delivery group's
// transaction (SET LOCAL: it ends with the transaction). The group's
// statements take their messages as arrays and join them to recipients
// and messages by key. Without statistics (a new database, before
// autovacuum first analyses it) PostgreSQL rates "message_id = ANY(a group
// of 64 ids)" as a third of the table and scans recipients whole for every
// group: measured, 1,080 scans reading 20 million rows in a run of 20,000
// messages, PostgreSQL's CPU from 42 % to 60 % and the delivery rate down
// by a quarter. With sequential scans off it probes the keys. Planning
// each run afresh instead (plan_cache_mode = force_custom_plan) cost 5–7 %
// of the end-to-end rate and does not help without statistics. What stays
// open is a plan cached from statistics that say the tables are empty
// (taken by hand, or by autovacuum right after they were created): it may
// read a whole index until autovacuum analyses the tables again, after
// 10 % growth (TestGroupPlansProbeByKey).
const groupPlanner = `SET LOCAL enable_seqscan = off`

// The first round trip's statements. Every row is found by a key probe:
// the suppression, read only for the messages started ($2: an outcome
// needs none), is a correlated subquery, one primary-key probe per
// recipient, and so is the message's project inside it (a join to
// suppressions could be planned, on a table without statistics, as a scan
// of the whole table hashed).
const (
	lockGroupPostgres = `SELECT ` + lockedColumns + ` FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	readGroupPostgres = `SELECT r.message_id, r.position, r.email, r.kind, r.status,
			CASE WHEN r.message_id = ANY($2) THEN (SELECT s.reason FROM suppressions s WHERE s.email = r.email_lc
				AND s.project_id = (SELECT m.project_id FROM messages m WHERE m.id = r.message_id)) END
		FROM recipients r WHERE r.message_id = ANY($1) ORDER BY r.message_id, r.position`
)

// writeGroupStatement writes a group's changed rows: $1 is the time, then
// the recipients' columns, the messages', the events' and the
// suppressions'. A recipient's SMTP code and response change only with a
// result; a message's next attempt only when given.
const writeGroupStatement = `WITH r AS (UPDATE recipients SET status = v.st,
			smtp_code = CASE WHEN v.res THEN v.code ELSE recipients.smtp_code END,
			smtp_response = CASE WHEN v.res THEN v.resp ELSE recipients.smtp_response END, updated_at = $1
		FROM unnest($2::text[], $3::int[], $4::text[], $5::bool[], $6::int[], $7::text[])
			AS v(mid, pos, st, res, code, resp)
		WHERE recipients.message_id = v.mid AND recipients.position = v.pos),
	m AS (UPDATE messages SET status = w.st, attempts = messages.attempts + w.att,
			possibly_duplicated = messages.possibly_duplicated OR w.dup, event_seq = w.seq,
			next_attempt_at = COALESCE(w.due, messages.next_attempt_at), updated_at = $1
		FROM unnest($8::text[], $9::text[], $10::int[], $11::bool[], $12::bigint[], $13::bigint[])
			AS w(mid, st, att, dup, seq, due)
		WHERE messages.id = w.mid),
	e AS (` + insertEvent + ` SELECT x.proj, x.mid, x.rcpt, x.typ, x.seq, x.data, $1
		FROM unnest($14::text[], $15::text[], $16::text[], $17::text[], $18::bigint[], $19::text[])
			AS x(proj, mid, rcpt, typ, seq, data)),
	s AS (INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
		SELECT y.proj, y.email, y.reason, y.note, $1, $1
		FROM unnest($20::text[], $21::text[], $22::text[], $23::text[]) AS y(proj, email, reason, note)
		ON CONFLICT (project_id, email) DO NOTHING)
	SELECT 1`

// writeGroupPostgres runs ops as one transaction; on error nothing was
// written (unless the error is ErrCommitUnknown) and the calls' results
// are not to be used.
func (s *Store) writeGroupPostgres(ctx context.Context, ops []deliveryOp) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("delivery group: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		// *stdlib.Conn, or a Config.WrapConnector wrapper embedding it.
		pgxConn, ok := driverConn.(interface{ Conn() *pgx.Conn })
		if !ok || pgxConn.Conn() == nil {
			return fmt.Errorf("delivery group: driver connection %T has no pgx connection", driverConn)
		}
		pc := pgxConn.Conn()
		msgs, payloads, err := readGroupPipelined(ctx, pc, groupIDs(ops), startIDs(ops))
		if err != nil {
			rollback(pc)
			return fmt.Errorf("delivery group: %w", err)
		}
		g := &deliveryGroup{msgs: msgs}
		g.apply(ops)
		b := &pgx.Batch{}
		if ids := g.changedIDs(); len(ids) > 0 {
			b.Queue(writeGroupStatement, g.postgresArgs(ids, s.now())...)
		}
		b.Queue("COMMIT")
		if err := pc.SendBatch(ctx, b).Close(); err != nil {
			rollback(pc)
			return commitError(fmt.Errorf("delivery group: %w", err))
		}
		givePayloads(ops, payloads)
		return nil
	})
}

// readPayloadsPostgres reads the payloads of the messages a group starts,
// in the first round trip (no round trip of its own; a start that finds
// nothing to send read one for nothing, which is rare).
const readPayloadsPostgres = `SELECT message_id, request, text, html FROM message_payloads WHERE message_id = ANY($1)`

// rollback ends a failed pipeline's transaction. Its own error is dropped:
// the connection is then still in a transaction, and the pool discards it.
func rollback(pc *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = pc.Exec(ctx, "ROLLBACK")
}

// readGroupPipelined is the first round trip: it opens the transaction,
// locks the messages of ids (missing ones are absent from the map), reads
// their recipients and the payloads of the messages starts.
func readGroupPipelined(ctx context.Context, pc *pgx.Conn, ids, starts []string) (map[string]*lockedMessage,
	map[string]Payload, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(groupPlanner)
	b.Queue(lockGroupPostgres, ids)
	b.Queue(readGroupPostgres, ids, starts)
	if len(starts) > 0 {
		b.Queue(readPayloadsPostgres, starts)
	}
	br := pc.SendBatch(ctx, b)
	msgs, err := scanGroup(br, len(ids))
	payloads := map[string]Payload{}
	if err == nil && len(starts) > 0 {
		err = scanPayloads(br, payloads)
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return msgs, payloads, err
}

// scanGroup reads the results of readGroupPipelined's pipeline up to the
// recipients.
func scanGroup(br pgx.BatchResults, n int) (map[string]*lockedMessage, error) {
	for range 2 { // BEGIN, groupPlanner
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	msgs := make(map[string]*lockedMessage, n)
	for rows.Next() {
		m, err := scanLocked(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		msgs[m.d.ID] = m
	}
	if rows.Close(); rows.Err() != nil {
		return nil, rows.Err()
	}
	if rows, err = br.Query(); err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var rc DeliveryRecipient
		var reason sql.NullString
		if err := rows.Scan(&id, &rc.Position, &rc.Email, &rc.Kind, &rc.Status, &reason); err != nil {
			return nil, err
		}
		if m := msgs[id]; m != nil {
			m.addRecipient(rc, reason)
		}
	}
	return msgs, rows.Err()
}

// scanPayloads reads the result of readPayloadsPostgres into payloads.
func scanPayloads(br pgx.BatchResults, payloads map[string]Payload) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p Payload
		var text, html []byte
		if err := rows.Scan(&id, &p.Request, &text, &html); err != nil {
			return fmt.Errorf("payloads: %w", err)
		}
		p.Text, p.HTML = string(text), string(html)
		payloads[id] = p
	}
	return rows.Err()
}

// postgresArgs are writeGroupStatement's arguments for the messages ids.
func (g *deliveryGroup) postgresArgs(ids []string, now time.Time) []any {
	var (
		rIDs, rStatuses, rResponses            []string
		rPositions                             []int
		rResults                               []bool
		rCodes                                 []*int
		mStatuses                              []string
		mAttempts                              []int
		mDups                                  []bool
		mSeqs                                  []int64
		mDue                                   []*int64
		eProjects, eIDs, eRcpts, eTypes, eData []string
		eSeqs                                  []int64
		sProjects, sEmails, sReasons, sNotes   []string
	)
	for _, id := range ids {
		m := g.msgs[id]
		for _, rc := range m.d.Recipients {
			result, ok := m.results[rc.Position]
			if !ok {
				continue
			}
			o := m.outcomes[rc.Position]
			var code *int
			if result && o.SMTPCode != 0 {
				code = &o.SMTPCode
			}
			rIDs, rPositions, rStatuses = append(rIDs, id), append(rPositions, rc.Position), append(rStatuses, rc.Status)
			rResults, rCodes, rResponses = append(rResults, result), append(rCodes, code), append(rResponses, o.SMTPResponse)
		}
		var due *int64
		if m.nextAttempt != nil {
			us := micros(*m.nextAttempt)
			due = &us
		}
		mStatuses, mAttempts, mDups = append(mStatuses, m.status()), append(mAttempts, m.attempts), append(mDups, m.dup)
		mSeqs, mDue = append(mSeqs, m.eventSeq), append(mDue, due)
		for _, e := range m.events {
			eProjects, eIDs, eRcpts = append(eProjects, e.projectID), append(eIDs, e.messageID), append(eRcpts, e.recipient)
			eTypes, eSeqs, eData = append(eTypes, e.typ), append(eSeqs, e.seq), append(eData, e.data)
		}
	}
	for _, sr := range g.suppressions {
		sProjects, sEmails = append(sProjects, sr.projectID), append(sEmails, sr.email)
		sReasons, sNotes = append(sReasons, sr.reason), append(sNotes, sr.note)
	}
	return []any{micros(now),
		rIDs, rPositions, rStatuses, rResults, rCodes, rResponses,
		ids, mStatuses, mAttempts, mDups, mSeqs, mDue,
		eProjects, eIDs, eRcpts, eTypes, eSeqs, eData,
		sProjects, sEmails, sReasons, sNotes}
}
