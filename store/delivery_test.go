package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// taskEnds is the deadline tests give a start.
var taskEnds = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// startedAlone starts a message's delivery in a group of its own.
func startedAlone(t *testing.T, s *Store, id string) AttemptStart {
	t.Helper()
	_, out, err := s.StartDelivery(context.Background(), id, taskEnds)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return out
}

// record records outcomes of a message in a group of its own.
func record(t *testing.T, s *Store, id string, outs ...Outcome) {
	t.Helper()
	if err := s.RecordOutcomes(context.Background(), id, outs, time.Time{}); err != nil {
		t.Fatalf("record %s: %v", id, err)
	}
}

// writeOps writes ops as one group (falling back call by call as the
// delivery writer does) and waits for every answer.
func writeOps(s *Store, ops []deliveryOp) {
	for _, op := range ops {
		if op.start != nil {
			op.start.done = make(chan struct{})
		} else {
			op.outcome.done = make(chan struct{})
		}
	}
	s.writeDeliveries(context.Background(), ops)
	for _, op := range ops {
		if op.start != nil {
			<-op.start.done
		} else {
			<-op.outcome.done
		}
	}
}

func startOps(group []*startRequest) []deliveryOp {
	ops := make([]deliveryOp, len(group))
	for i, r := range group {
		ops[i] = deliveryOp{start: r}
	}
	return ops
}

// eventTypes lists a message's event types in sequence order, checking the
// sequence numbers run 1, 2, 3…
func eventTypes(t *testing.T, s *Store, id string) []string {
	t.Helper()
	evs, err := s.MessageEvents(context.Background(), DefaultProjectID, id)
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	var out []string
	for i, ev := range evs {
		if ev.Sequence != int64(i+1) {
			t.Errorf("%s event %d has sequence %d", id, i, ev.Sequence)
		}
		out = append(out, ev.Type+" "+ev.Recipient)
	}
	return out
}

func storedStatuses(t *testing.T, s *Store, id string) (string, []string) {
	t.Helper()
	m, err := s.GetMessage(context.Background(), DefaultProjectID, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	var rs []string
	for _, r := range m.Recipients {
		rs = append(rs, r.Status)
	}
	return m.Status, rs
}

// TestStartTogether starts one group holding a fresh message, one with a
// recipient suppressed since acceptance, one already delivered, one whose
// last attempt never finished, and an id that does not exist: each gets
// what StartDelivery alone gives it, in one transaction.
func TestStartTogether(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		msgs := []NewMessage{
			newMsg("fresh", clk.Now(), "a@example.org"),
			newMsg("partly", clk.Now(), "b@example.org", "Gone@Example.com", "c@example.org"),
			newMsg("done", clk.Now(), "d@example.org"),
			newMsg("cut", clk.Now(), "e@example.org"),
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "gone@example.com", Reason: "hard_bounce"}); err != nil {
			t.Fatalf("suppress: %v", err)
		}
		startedAlone(t, s, "done")
		record(t, s, "done", Outcome{Position: 0, Email: "d@example.org", Status: StatusSent, SMTPCode: 250, Event: EventSent})
		startedAlone(t, s, "cut")

		ids := []string{"fresh", "partly", "done", "cut", "missing"}
		group := make([]*startRequest, len(ids))
		for i, id := range ids {
			group[i] = &startRequest{id: id, ends: taskEnds}
		}
		if err := s.writeGroup(ctx, startOps(group)); err != nil {
			t.Fatalf("start together: %v", err)
		}
		want := []struct {
			send        int
			suppressed  []string
			interrupted bool
			attempts    int
			err         error
			status      string
			recipients  []string
			events      []string
			dup         bool
		}{
			{send: 1, status: StatusSending, recipients: []string{StatusSending},
				events: []string{"message.queued a@example.org"}},
			{send: 2, suppressed: []string{"Gone@Example.com"}, status: StatusSending,
				recipients: []string{StatusSending, StatusSuppressed, StatusSending},
				events: []string{"message.queued b@example.org", "message.queued Gone@Example.com",
					"message.queued c@example.org", "message.suppressed Gone@Example.com"}},
			{attempts: 1, status: StatusSent, recipients: []string{StatusSent},
				events: []string{"message.queued d@example.org", "message.sent d@example.org"}},
			{send: 1, interrupted: true, attempts: 1, status: StatusSending, recipients: []string{StatusSending},
				events: []string{"message.queued e@example.org"}, dup: true},
			{err: ErrNotFound},
		}
		for i, id := range ids {
			t.Run(id, func(t *testing.T) {
				r, w := group[i], want[i]
				if !errors.Is(r.err, w.err) {
					t.Fatalf("err = %v, want %v", r.err, w.err)
				}
				if w.err != nil {
					return
				}
				if len(r.out.Send) != w.send || fmt.Sprint(r.out.Suppressed) != fmt.Sprint(w.suppressed) ||
					r.out.Interrupted != w.interrupted || r.d.Attempts != w.attempts {
					t.Errorf("start = send %d suppressed %v interrupted %v attempts %d, want %d %v %v %d",
						len(r.out.Send), r.out.Suppressed, r.out.Interrupted, r.d.Attempts,
						w.send, w.suppressed, w.interrupted, w.attempts)
				}
				status, rs := storedStatuses(t, s, id)
				if status != w.status || fmt.Sprint(rs) != fmt.Sprint(w.recipients) {
					t.Errorf("stored %s %v, want %s %v", status, rs, w.status, w.recipients)
				}
				if got := eventTypes(t, s, id); fmt.Sprint(got) != fmt.Sprint(w.events) {
					t.Errorf("events %q, want %q", got, w.events)
				}
				m, _ := s.GetMessage(ctx, DefaultProjectID, id)
				if m.PossiblyDuplicated != w.dup {
					t.Errorf("possibly duplicated = %v, want %v", m.PossiblyDuplicated, w.dup)
				}
			})
		}
	})
}

// TestRecordTogether records one group of single-recipient outcomes: sent,
// a hard failure that suppresses the address, a deferral flagged possibly
// duplicated, and an outcome for a recipient no longer sending (ignored).
func TestRecordTogether(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ids := []string{"sent", "bounced", "deferred", "stale"}
		for i, id := range ids {
			if _, err := s.CreateMessages(ctx, []NewMessage{newMsg(id, clk.Now(), fmt.Sprintf("r%d@example.org", i))}, nil); err != nil {
				t.Fatalf("create: %v", err)
			}
			startedAlone(t, s, id)
		}
		record(t, s, "stale", Outcome{Position: 0, Email: "r3@example.org", Status: StatusSent, SMTPCode: 250, Event: EventSent})
		outs := []Outcome{
			{Email: "r0@example.org", Status: StatusSent, SMTPCode: 250, SMTPResponse: "250 2.0.0 ok", Event: EventSent},
			{Email: "r1@example.org", Status: StatusFailed, SMTPCode: 550, SMTPResponse: "550 5.1.1 no such user",
				Event: EventFailed, EventData: []byte(`{"reason":"hard_bounce"}`), Suppress: "hard_bounce"},
			{Email: "r2@example.org", Status: StatusDeferred, Event: EventDeferred, PossiblyDuplicated: true},
			{Email: "r3@example.org", Status: StatusFailed, SMTPCode: 550, Event: EventFailed, Suppress: "hard_bounce"},
		}
		ops := make([]deliveryOp, len(ids))
		for i, id := range ids {
			ops[i] = deliveryOp{outcome: &outcomeRequest{messageID: id, outs: []Outcome{outs[i]}}}
		}
		if err := s.writeGroup(ctx, ops); err != nil {
			t.Fatalf("record together: %v", err)
		}
		want := []struct {
			status     string
			events     []string
			suppressed bool
			dup        bool
		}{
			{StatusSent, []string{"message.queued r0@example.org", "message.sent r0@example.org"}, false, false},
			{StatusFailed, []string{"message.queued r1@example.org", "message.failed r1@example.org"}, true, false},
			{StatusDeferred, []string{"message.queued r2@example.org", "message.deferred r2@example.org"}, false, true},
			{StatusSent, []string{"message.queued r3@example.org", "message.sent r3@example.org"}, false, false},
		}
		for i, id := range ids {
			t.Run(id, func(t *testing.T) {
				w := want[i]
				status, rs := storedStatuses(t, s, id)
				if status != w.status || fmt.Sprint(rs) != fmt.Sprint([]string{w.status}) {
					t.Errorf("stored %s %v, want %s", status, rs, w.status)
				}
				if got := eventTypes(t, s, id); fmt.Sprint(got) != fmt.Sprint(w.events) {
					t.Errorf("events %q, want %q", got, w.events)
				}
				_, err := s.GetSuppression(ctx, DefaultProjectID, outs[i].Email)
				if (err == nil) != w.suppressed {
					t.Errorf("suppressed = %v (%v), want %v", err == nil, err, w.suppressed)
				}
				m, _ := s.GetMessage(ctx, DefaultProjectID, id)
				if m.PossiblyDuplicated != w.dup {
					t.Errorf("possibly duplicated = %v, want %v", m.PossiblyDuplicated, w.dup)
				}
			})
		}
		m, _ := s.GetMessage(ctx, DefaultProjectID, "bounced")
		if c := m.Recipients[0].SMTPCode; c == nil || *c != 550 || m.Recipients[0].SMTPResponse != "550 5.1.1 no such user" {
			t.Errorf("bounced recipient code %v response %q", c, m.Recipients[0].SMTPResponse)
		}
	})
}

// TestDeliveryConcurrent runs many deliveries at once through the
// batchers: every message is started once and ends sent, with its two
// events numbered 1 and 2.
func TestDeliveryConcurrent(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		const n = 80
		var msgs []NewMessage
		for i := range n {
			msgs = append(msgs, newMsg(fmt.Sprintf("m%03d", i), clk.Now(), fmt.Sprintf("r%d@example.org", i)))
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, m := range msgs {
			wg.Go(func() {
				d, start, err := s.StartDelivery(ctx, m.ID, taskEnds)
				if err != nil || len(start.Send) != 1 || d.Attempts != 0 {
					errs <- fmt.Errorf("start %s: %v, send %d, attempts %d", m.ID, err, len(start.Send), d.Attempts)
					return
				}
				r := start.Send[0]
				errs <- s.RecordOutcomes(ctx, d.ID, []Outcome{{Position: r.Position,
					Email: r.Email, Status: StatusSent, SMTPCode: 250, Event: EventSent}}, time.Time{})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range msgs {
			status, _ := storedStatuses(t, s, m.ID)
			if evs := eventTypes(t, s, m.ID); status != StatusSent || len(evs) != 2 {
				t.Errorf("%s: %s, events %q", m.ID, status, evs)
			}
		}
	})
}

// TestStartGroupFailureWritesNothing: a group is one transaction (on
// PostgreSQL two pipelined round trips). When its write fails, nothing of
// the group is written, no connection is left in a transaction, and the
// next group goes through; on PostgreSQL the same when the first round
// trip fails, more times than the pool has connections.
func TestStartGroupFailureWritesNothing(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("blocked", clk.Now(), "a@example.org", "Gone@Example.com")}, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "gone@example.com", Reason: "hard_bounce"}); err != nil {
			t.Fatalf("suppress: %v", err)
		}
		// The message.suppressed event will take sequence 3 (after the two
		// message.queued): a row already holding it makes the write fail.
		if _, err := s.db.ExecContext(ctx, `INSERT INTO events (project_id, message_id, recipient, type, sequence, data, created_at)
			VALUES ($1, 'blocked', '', 'test.block', 3, '{}', 0)`, DefaultProjectID); err != nil {
			t.Fatalf("block sequence: %v", err)
		}
		group := []*startRequest{{id: "blocked", ends: taskEnds}}
		if err := s.writeGroup(ctx, startOps(group)); err == nil {
			t.Fatal("group start succeeded over a taken event sequence")
		}
		if status, rs := storedStatuses(t, s, "blocked"); status != StatusQueued || fmt.Sprint(rs) != "[queued queued]" {
			t.Errorf("after the failed group: status %s, recipients %v; want queued, [queued queued]", status, rs)
		}
		if s.dialect == DialectPostgres {
			failFirstRoundTrip(t, s)
		}
		if _, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE type = 'test.block'`); err != nil {
			t.Fatalf("unblock: %v", err)
		}
		if err := s.writeGroup(ctx, startOps(group)); err != nil {
			t.Fatalf("group start after the failures: %v", err)
		}
		if got := group[0].out; len(got.Send) != 1 || fmt.Sprint(got.Suppressed) != "[Gone@Example.com]" {
			t.Errorf("start = %+v, want one to send and Gone@Example.com suppressed", got)
		}
		if status, rs := storedStatuses(t, s, "blocked"); status != StatusSending || fmt.Sprint(rs) != "[sending suppressed]" {
			t.Errorf("after the group: status %s, recipients %v; want sending, [sending suppressed]", status, rs)
		}
	})
}

// failFirstRoundTrip makes the first round trip of more PostgreSQL group
// starts fail (an id that is not UTF-8, refused by the server after BEGIN)
// than the pool has connections, then checks that no session of the
// database is left in a transaction.
func failFirstRoundTrip(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for i := range s.db.Stats().MaxOpenConnections + 2 {
		bad := []*startRequest{{id: fmt.Sprintf("bad-\xff-%d", i)}}
		err := s.writeGroup(ctx, startOps(bad))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22021" {
			t.Fatalf("group start of an id that is not UTF-8: %v, want the server's 22021", err)
		}
	}
	var open int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil {
		t.Fatalf("sessions: %v", err)
	}
	if open != 0 {
		t.Errorf("%d sessions left idle in a transaction", open)
	}
}

// TestGroupPlansProbeByKey: the delivery group's statements, planned as
// its transaction plans them (groupPlanner), find every row by a key
// probe, never scanning a whole table or index, once the tables hold ten
// thousand messages: on a session that prepared and ran them while the
// database was just migrated empty (no statistics), and again once the
// tables are analysed. Without groupPlanner the recipients are scanned
// whole.
func TestGroupPlansProbeByKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openStore(t, testsvc.PostgresURL(t), clk)
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	statements := []struct{ name, sql, args string }{
		{"lock", lockGroupPostgres, "'{m00001,m00002,m00003}'"},
		{"recipients", readGroupPostgres, "'{m00001,m00002,m00003}', '{m00001}'"},
		{"write", writeGroupStatement, "1, '{m00001}', '{0}', '{sent}', '{t}', '{250}', '{ok}', " +
			"'{m00001}', '{sent}', '{1}', '{f}', '{2}', '{NULL}', " +
			"'{p}', '{m00001}', '{x@example.org}', '{message.sent}', '{2}', '{\"{}\"}', " +
			"'{p}', '{x@example.org}', '{hard_bounce}', '{note}'"},
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, st := range statements {
		if _, err := conn.ExecContext(ctx, "PREPARE plan_"+st.name+" AS "+st.sql); err != nil {
			t.Fatalf("prepare %s: %v", st.name, err)
		}
		for range 6 { // five custom plans, then PostgreSQL may keep a generic one
			explain(t, conn, st.name, st.args)
		}
	}
	check := func(t *testing.T, state string) {
		for _, st := range statements {
			t.Run(state+"/"+st.name, func(t *testing.T) {
				plan := explain(t, conn, st.name, st.args)
				if bad := wholeScans(plan); len(bad) > 0 {
					t.Errorf("plan scans whole tables or indexes %v:\n%s", bad, strings.Join(plan, "\n"))
				}
			})
		}
	}
	var msgs []NewMessage
	for i := range 10000 {
		msgs = append(msgs, newMsg(fmt.Sprintf("m%05d", i), clk.Now(), fmt.Sprintf("r%d@example.org", i), "cc@example.org"))
	}
	if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	for i := range 2000 {
		if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: fmt.Sprintf("s%d@example.org", i),
			Reason: "hard_bounce"}); err != nil {
			t.Fatal(err)
		}
	}
	check(t, "filled")
	if _, err := s.db.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	check(t, "analysed")
}

// explain is the EXPLAIN of the prepared statement plan_name run with
// args in a transaction set up as a delivery group's (groupPlanner).
func explain(t *testing.T, conn *sql.Conn, name, args string) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.ExecContext(ctx, groupPlanner); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, "EXPLAIN EXECUTE plan_"+name+"("+args+")")
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	return plan
}

// wholeScans lists the scan nodes of an EXPLAIN plan that read a whole
// table or index: a sequential scan, or an index scan without an Index
// Cond among its details.
func wholeScans(plan []string) []string {
	var bad []string
	for i, line := range plan {
		switch {
		case strings.Contains(line, "Seq Scan"):
			bad = append(bad, strings.TrimSpace(line))
		case strings.Contains(line, "Index Scan") || strings.Contains(line, "Index Only Scan"):
			if !nodeHas(plan[i+1:], "Index Cond:") {
				bad = append(bad, strings.TrimSpace(line))
			}
		}
	}
	return bad
}

// nodeHas reports whether the detail lines that follow a node (up to the
// next node, "->") include want.
func nodeHas(rest []string, want string) bool {
	for _, line := range rest {
		if strings.Contains(line, "->") {
			return false
		}
		if strings.Contains(line, want) {
			return true
		}
	}
	return false
}

// TestDeliveryGroupSharesOneTransaction: a group holding starts and
// outcomes is written in one transaction (on PostgreSQL the rows carry the
// same xmin). When the outcomes' part fails, nothing of the group is
// written by it, and each kind is then written apart: the start goes
// through once, only the outcome fails.
func TestDeliveryGroupSharesOneTransaction(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		msgs := []NewMessage{
			newMsg("start1", clk.Now(), "a@example.org"), newMsg("done1", clk.Now(), "b@example.org"),
			newMsg("start2", clk.Now(), "c@example.org"), newMsg("done2", clk.Now(), "d@example.org"),
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		startedAlone(t, s, "done1")
		startedAlone(t, s, "done2")
		group := func(start, done, email string) ([]deliveryOp, *startRequest, *outcomeRequest) {
			sr := &startRequest{id: start, ends: taskEnds}
			or := &outcomeRequest{messageID: done,
				outs: []Outcome{{Position: 0, Email: email, Status: StatusSent, SMTPCode: 250, Event: EventSent}}}
			return []deliveryOp{{start: sr}, {outcome: or}}, sr, or
		}

		ops, sr, or := group("start1", "done1", "b@example.org")
		writeOps(s, ops)
		if sr.err != nil || len(sr.out.Send) != 1 || or.err != nil {
			t.Fatalf("start %+v, %v; outcome %v", sr.out, sr.err, or.err)
		}
		if st, _ := storedStatuses(t, s, "start1"); st != StatusSending {
			t.Errorf("start1 %s, want sending", st)
		}
		if st, _ := storedStatuses(t, s, "done1"); st != StatusSent {
			t.Errorf("done1 %s, want sent", st)
		}
		if s.dialect == DialectPostgres {
			var xmins int
			if err := s.db.QueryRowContext(ctx, `SELECT count(DISTINCT xmin::text) FROM messages
				WHERE id IN ('start1', 'done1')`).Scan(&xmins); err != nil || xmins != 1 {
				t.Errorf("start1 and done1 written by %d transactions (%v), want 1", xmins, err)
			}
		}

		// done2's message.sent will take sequence 2 (after message.queued):
		// a row already holding it makes the outcome fail.
		if _, err := s.db.ExecContext(ctx, `INSERT INTO events (project_id, message_id, recipient, type, sequence, data, created_at)
			VALUES ($1, 'done2', '', 'test.block', 2, '{}', 0)`, DefaultProjectID); err != nil {
			t.Fatalf("block sequence: %v", err)
		}
		ops, sr, or = group("start2", "done2", "d@example.org")
		writeOps(s, ops)
		if sr.err != nil || len(sr.out.Send) != 1 || sr.out.Interrupted {
			t.Errorf("start2 = %+v, %v; want one to send, not interrupted", sr.out, sr.err)
		}
		if or.err == nil {
			t.Error("done2's outcome succeeded over a taken event sequence")
		}
		var attempts int
		if err := s.db.QueryRowContext(ctx, `SELECT attempts FROM messages WHERE id = 'start2'`).Scan(&attempts); err != nil || attempts != 1 {
			t.Errorf("start2 attempts = %d, %v; want 1", attempts, err)
		}
		if st, rs := storedStatuses(t, s, "done2"); st != StatusSending || fmt.Sprint(rs) != "[sending]" {
			t.Errorf("done2 %s %v, want sending [sending]", st, rs)
		}
	})
}

// TestStartFirstDeliveryConcurrent: first-attempt starts going through the
// delivery writer together (grouped on both engines) start only messages
// never attempted; one attempted before (its start left sending, or
// deferred) is reported Attempted with nothing written, and one with
// nothing pending is neither started nor Attempted. The batch id is kept
// and listed for the reconciler.
func TestStartFirstDeliveryConcurrent(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		const n = 40
		var msgs []NewMessage
		for i := range n {
			// Created together, to be sent now: one batch, batch:f000.
			msgs = append(msgs, newMsg(fmt.Sprintf("f%03d", i), clk.Now(), fmt.Sprintf("r%d@example.org", i)))
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		attempted := map[string]bool{}
		for i := 0; i < n; i += 4 { // every fourth was started before
			attempted[msgs[i].ID] = true
			_, start, err := s.StartDelivery(ctx, msgs[i].ID, taskEnds)
			if err != nil {
				t.Fatal(err)
			}
			if i%8 == 0 { // half of those deferred, half left sending
				r := start.Send[0]
				record(t, s, msgs[i].ID, Outcome{Position: r.Position, Email: r.Email, Status: StatusDeferred,
					SMTPCode: 451, Event: EventDeferred})
			}
		}
		done := msgs[1].ID // nothing pending: cancelled
		if _, err := s.db.ExecContext(ctx, `UPDATE recipients SET status = 'cancelled' WHERE message_id = $1`, done); err != nil {
			t.Fatal(err)
		}
		refs, err := s.MessagesAwaitingTask(ctx, clk.Now().Add(time.Minute), 100)
		if err != nil || len(refs) == 0 || refs[0].BatchID != "batch:f000" {
			t.Fatalf("awaiting task %+v (%v), want the batch id listed", refs, err)
		}
		var wg sync.WaitGroup
		results := make([]AttemptStart, n)
		dels := make([]Delivery, n)
		errs := make([]error, n)
		for i, m := range msgs {
			wg.Go(func() { dels[i], results[i], errs[i] = s.StartFirstDelivery(ctx, m.ID, taskEnds) })
		}
		wg.Wait()
		for i, m := range msgs {
			out, err := results[i], errs[i]
			switch {
			case err != nil:
				t.Errorf("%s: %v", m.ID, err)
			case m.ID == done:
				if out.Attempted || len(out.Send) != 0 {
					t.Errorf("%s with nothing pending: %+v", m.ID, out)
				}
			case attempted[m.ID]:
				if !out.Attempted || len(out.Send) != 0 || out.Interrupted {
					t.Errorf("%s attempted before: %+v, want Attempted only", m.ID, out)
				}
				if d := dels[i]; d.Attempts != 1 {
					t.Errorf("%s attempts %d, want 1", m.ID, d.Attempts)
				}
			default:
				if out.Attempted || len(out.Send) != 1 {
					t.Errorf("%s never attempted: %+v, want started", m.ID, out)
				}
			}
		}
		for id := range attempted {
			var attempts int
			if err := s.db.QueryRowContext(ctx, `SELECT attempts FROM messages WHERE id = $1`, id).Scan(&attempts); err != nil || attempts != 1 {
				t.Errorf("%s attempts %d after a first-only start (%v), want still 1", id, attempts, err)
			}
		}
	})
}
