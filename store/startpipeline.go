package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// A group of delivery starts on PostgreSQL is one transaction of two round
// trips, each a pgx pipeline (the extended protocol's messages sent
// together, answered in order):
//
//  1. BEGIN; lock the message rows in id order (so two groups never wait
//     on each other in a cycle); read their recipients, each with its
//     suppression if the project has one. Under READ COMMITTED every
//     statement takes its own snapshot when it starts, and a pipeline runs
//     its statements one after the other, so the recipients are read after
//     the locks are held, as if they were separate round trips.
//  2. One statement writing every plan (recipients, message rows, the
//     events of suppressed recipients numbered from the message's
//     event_seq), the outcomes' statement when outcomes share the group
//     (deliverybatch.go), then COMMIT.
//
// database/sql has no pipelines, so this runs on the pgx connection under
// the pool's (sql.Conn.Raw). Any error rolls back; a connection left in a
// transaction is dropped by the pool (pgx's stdlib ResetSession).

// startGroupPostgres starts every request of group and records outcomes
// (all single()) in the same transaction, calling set for each start once
// it has committed; on error nothing is written and set is not called.
func (s *Store) startGroupPostgres(ctx context.Context, group []*startRequest, outcomes []*outcomeRequest,
	set func(i int, d Delivery, out AttemptStart, err error)) error {
	ids := make([]string, len(group))
	firstOnly := map[string]bool{}
	for i, r := range group {
		ids[i] = r.id
		if r.firstOnly {
			firstOnly[r.id] = true
		}
	}
	conn, err := s.bulk.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin attempts: %w", err)
	}
	defer conn.Close()
	var ds map[string]Delivery
	var plans map[string]*startPlan
	err = conn.Raw(func(driverConn any) error {
		pc := driverConn.(*stdlib.Conn).Conn()
		var err error
		if ds, plans, err = s.startPipelined(ctx, pc, ids, firstOnly, outcomes); err != nil {
			rollback(pc)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, id := range ids {
		d, ok := ds[id]
		switch {
		case !ok:
			set(i, Delivery{}, AttemptStart{}, fmt.Errorf("begin attempt %s: %w", id, ErrNotFound))
		case plans[id] != nil:
			set(i, d, plans[id].out, nil)
		case firstOnly[id] && anyPending(d.Recipients):
			set(i, d, AttemptStart{Attempted: true}, nil)
		default:
			set(i, d, AttemptStart{}, nil)
		}
	}
	return nil
}

// startPipelined runs the two round trips on pc.
func (s *Store) startPipelined(ctx context.Context, pc *pgx.Conn, ids []string, firstOnly map[string]bool,
	outcomes []*outcomeRequest) (map[string]Delivery, map[string]*startPlan, error) {
	ds, suppressed, err := readStartGroup(ctx, pc, ids)
	if err != nil {
		return nil, nil, err
	}
	plans := planStarts(ds, suppressed, firstOnly)
	b := &pgx.Batch{}
	if len(plans) > 0 {
		q, args := s.startPlansStatement(plans)
		b.Queue(q, args...)
	}
	if len(outcomes) > 0 {
		b.Queue(groupOutcomesStatement, s.groupOutcomesArgs(outcomes)...)
	}
	b.Queue("COMMIT")
	if err := pc.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("mark attempts: %w", err)
	}
	return ds, plans, nil
}

// rollback ends a failed pipeline's transaction. Its own error is dropped:
// the connection is then still in a transaction, and the pool discards it.
func rollback(pc *pgx.Conn) {
	_, _ = pc.Exec(context.Background(), "ROLLBACK")
}

// The first round trip's statements. The bulk pool plans once per session
// (generic plans), possibly while the tables are still empty, so their
// shape must not depend on statistics: every row is found by a key probe.
// The suppression is a correlated subquery, one primary-key probe per
// recipient, and so is the message's project inside it; a join to
// messages or suppressions could be planned, on an empty database, as a
// scan of the whole table hashed, and kept so on that session for good.
const (
	lockStartGroup           = `SELECT ` + deliveryColumns + ` FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE`
	readStartGroupRecipients = `SELECT r.message_id, r.position, r.email, r.kind, r.status,
			(SELECT s.reason FROM suppressions s WHERE s.email = r.email_lc
				AND s.project_id = (SELECT m.project_id FROM messages m WHERE m.id = r.message_id))
		FROM recipients r WHERE r.message_id = ANY($1) ORDER BY r.message_id, r.position`
)

// readStartGroup is the first round trip: it opens the transaction, locks
// the messages of ids (missing ones are absent from the map) and reads
// their recipients, returning the suppression reasons of "project\x00email".
func readStartGroup(ctx context.Context, pc *pgx.Conn, ids []string) (map[string]Delivery, map[string]string, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockStartGroup, ids)
	b.Queue(readStartGroupRecipients, ids)
	br := pc.SendBatch(ctx, b)
	ds, suppressed, err := scanStartGroup(br, len(ids))
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("begin attempts: %w", err)
	}
	return ds, suppressed, nil
}

// scanStartGroup reads the three results of readStartGroup's pipeline.
func scanStartGroup(br pgx.BatchResults, n int) (map[string]Delivery, map[string]string, error) {
	if _, err := br.Exec(); err != nil {
		return nil, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	ds := make(map[string]Delivery, n)
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		ds[d.ID] = d
	}
	if rows.Close(); rows.Err() != nil {
		return nil, nil, rows.Err()
	}
	if rows, err = br.Query(); err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	suppressed := map[string]string{}
	for rows.Next() {
		var id string
		var reason sql.NullString
		var r DeliveryRecipient
		if err := rows.Scan(&id, &r.Position, &r.Email, &r.Kind, &r.Status, &reason); err != nil {
			return nil, nil, err
		}
		d, ok := ds[id]
		if !ok {
			continue
		}
		d.Recipients = append(d.Recipients, r)
		ds[id] = d
		if reason.Valid {
			suppressed[d.ProjectID+"\x00"+normEmail(r.Email)] = reason.String
		}
	}
	return ds, suppressed, rows.Err()
}

// startPlansSQL is startPlansStatement's statement.
const startPlansSQL = `WITH v AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS v(mid, pos, st)),
		r AS (UPDATE recipients SET status = v.st, updated_at = $4 FROM v
			WHERE recipients.message_id = v.mid AND recipients.position = v.pos),
		m AS (UPDATE messages SET attempts = attempts + 1, updated_at = $4, status = w.st,
			possibly_duplicated = possibly_duplicated OR w.dup, event_seq = event_seq + w.nev
			FROM unnest($5::text[], $6::text[], $7::bool[], $8::int[]) AS w(mid, st, dup, nev)
			WHERE messages.id = w.mid RETURNING messages.id, messages.event_seq),
		e AS (` + insertEvent + ` SELECT x.proj, x.mid, x.rcpt, x.typ, m.event_seq - x.back, x.data, $4
			FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::text[])
				AS x(mid, proj, rcpt, typ, back, data) JOIN m ON m.id = x.mid)
		SELECT count(*) FROM m`

// startPlansStatement writes the plans in one statement of data-modifying
// CTEs: the recipients' statuses; each message row's attempt count,
// status, flag and event_seq (advanced by its number of events); the
// events of suppressed recipients, numbered up to the new event_seq.
func (s *Store) startPlansStatement(plans map[string]*startPlan) (string, []any) {
	ids := make([]string, 0, len(plans))
	for id := range plans {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rIDs, rStatuses, mStatuses, eIDs, eProjects, eRecipients, eTypes, eData []string
	var rPositions, mEvents, eBack []int
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
		for i, ev := range p.evs {
			data := "{}"
			if len(ev.Data) > 0 {
				data = string(ev.Data)
			}
			eIDs, eProjects, eRecipients = append(eIDs, id), append(eProjects, p.d.ProjectID), append(eRecipients, ev.Recipient)
			eTypes, eData, eBack = append(eTypes, ev.Type), append(eData, data), append(eBack, len(p.evs)-1-i)
		}
	}
	q := startPlansSQL
	return q, []any{rIDs, rPositions, rStatuses, micros(s.now()), ids, mStatuses, mDups, mEvents,
		eIDs, eProjects, eRecipients, eTypes, eBack, eData}
}
