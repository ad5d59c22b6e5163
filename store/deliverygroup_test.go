package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupAppliesCallsInOrder: one group holding several calls on the
// same messages, of one and of several recipients, applies them in order,
// each seeing the writes of those before it: a start and its deferral; a
// start whose outcomes (sent, and a hard failure that suppresses the
// address) come in two calls; and a later start of another message to
// that address, found suppressed by the group's own outcome; a deferral
// and the next start of a message started before, which keeps the
// deferral's SMTP answer.
func TestGroupAppliesCallsInOrder(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		msgs := []NewMessage{
			newMsg("one", clk.Now(), "a@example.org"),
			newMsg("many", clk.Now(), "b@example.org", "Hard@Example.org", "c@example.org"),
			newMsg("later", clk.Now(), "hard@example.org", "d@example.org"),
			newMsg("again", clk.Now(), "e@example.org"),
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		startedAlone(t, s, "again")
		deferAgain := &outcomeRequest{messageID: "again", outs: []Outcome{{Position: 0, Email: "e@example.org",
			Status: StatusDeferred, SMTPCode: 451, SMTPResponse: "451 try later", Event: EventDeferred}}}
		startAgain := &startRequest{id: "again", ends: taskEnds.Add(time.Hour)}
		retryAt := clk.Now().Add(4 * time.Minute)
		startOne, startMany := &startRequest{id: "one", ends: taskEnds}, &startRequest{id: "many", ends: taskEnds}
		startLater := &startRequest{id: "later", ends: taskEnds}
		outs := []*outcomeRequest{
			{messageID: "one", retryAt: retryAt, outs: []Outcome{{Position: 0, Email: "a@example.org",
				Status: StatusDeferred, SMTPCode: 451, Event: EventDeferred}}},
			{messageID: "many", outs: []Outcome{
				{Position: 0, Email: "b@example.org", Status: StatusSent, SMTPCode: 250, Event: EventSent},
				{Position: 1, Email: "Hard@Example.org", Status: StatusFailed, SMTPCode: 550, Event: EventFailed,
					Suppress: "hard_bounce", SMTPResponse: "550 no such user"}}},
			{messageID: "many", retryAt: retryAt, outs: []Outcome{{Position: 2, Email: "c@example.org",
				Status: StatusSent, SMTPCode: 250, Event: EventSent}}},
		}
		writeOps(s, []deliveryOp{{start: startOne}, {start: startMany}, {outcome: outs[0]}, {outcome: outs[1]},
			{outcome: outs[2]}, {start: startLater}, {outcome: deferAgain}, {start: startAgain}})
		if deferAgain.err != nil {
			t.Fatalf("outcome of again: %v", deferAgain.err)
		}
		for _, r := range []*startRequest{startOne, startMany, startLater, startAgain} {
			if r.err != nil {
				t.Fatalf("start %s: %v", r.id, r.err)
			}
		}
		for _, r := range outs {
			if r.err != nil {
				t.Fatalf("outcome of %s: %v", r.messageID, r.err)
			}
		}
		if len(startMany.out.Send) != 3 || len(startLater.out.Send) != 1 ||
			fmt.Sprint(startLater.out.Suppressed) != "[hard@example.org]" {
			t.Errorf("starts: many sends %d, later sends %d and suppresses %v; want 3, 1 and [hard@example.org]",
				len(startMany.out.Send), len(startLater.out.Send), startLater.out.Suppressed)
		}
		want := []struct {
			id, status string
			recipients []string
			events     []string
			next       time.Time
		}{
			{"one", StatusDeferred, []string{StatusDeferred},
				[]string{"message.queued a@example.org", "message.deferred a@example.org"}, retryAt},
			{"many", StatusPartial, []string{StatusSent, StatusFailed, StatusSent},
				[]string{"message.queued b@example.org", "message.queued Hard@Example.org", "message.queued c@example.org",
					"message.sent b@example.org", "message.failed Hard@Example.org", "message.sent c@example.org"}, taskEnds},
			{"later", StatusSending, []string{StatusSuppressed, StatusSending},
				[]string{"message.queued hard@example.org", "message.queued d@example.org",
					"message.suppressed hard@example.org"}, taskEnds},
			{"again", StatusSending, []string{StatusSending},
				[]string{"message.queued e@example.org", "message.deferred e@example.org"}, taskEnds.Add(time.Hour)},
		}
		for _, w := range want {
			t.Run(w.id, func(t *testing.T) {
				status, rs := storedStatuses(t, s, w.id)
				if status != w.status || fmt.Sprint(rs) != fmt.Sprint(w.recipients) {
					t.Errorf("stored %s %v, want %s %v", status, rs, w.status, w.recipients)
				}
				if got := eventTypes(t, s, w.id); fmt.Sprint(got) != fmt.Sprint(w.events) {
					t.Errorf("events %q, want %q", got, w.events)
				}
				if got := nextAttempt(t, s, w.id); !got.Equal(w.next) {
					t.Errorf("next attempt %s, want %s", got, w.next)
				}
			})
		}
		if d := startAgain.d; d.Attempts != 1 || startAgain.out.Interrupted || len(startAgain.out.Send) != 1 ||
			startAgain.out.Send[0].Status != StatusDeferred {
			t.Errorf("again started after its deferral: attempts %d, %+v; want 1, resending the deferred recipient",
				d.Attempts, startAgain.out)
		}
		m, err := s.GetMessage(ctx, DefaultProjectID, "again")
		if err != nil {
			t.Fatal(err)
		}
		if c := m.Recipients[0].SMTPCode; c == nil || *c != 451 || m.Recipients[0].SMTPResponse != "451 try later" {
			t.Errorf("again's recipient keeps code %v response %q, want the deferral's 451", c, m.Recipients[0].SMTPResponse)
		}
		if sup, err := s.GetSuppression(ctx, DefaultProjectID, "hard@example.org"); err != nil || sup.Reason != "hard_bounce" {
			t.Errorf("suppression %+v, %v; want hard_bounce", sup, err)
		}
	})
}

// nextAttempt is a message's stored next_attempt_at.
func nextAttempt(t *testing.T, s *Store, id string) time.Time {
	t.Helper()
	var us sql.NullInt64
	if err := s.db.QueryRowContext(context.Background(), `SELECT next_attempt_at FROM messages WHERE id = $1`, id).Scan(&us); err != nil {
		t.Fatalf("next attempt of %s: %v", id, err)
	}
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}

// TestCommitUnknownGroup: when a group's COMMIT may or may not have
// happened (here it did, and the connection reported it lost), no call of
// it is written again by the store: every call gets ErrCommitUnknown. A
// start written again would count a second attempt and flag the message
// possibly duplicated for recipients nothing was sent to; an outcome is
// written again by its caller (the worker), and changes nothing the second
// time. SQLite only: on PostgreSQL the COMMIT travels in the group's pgx
// pipeline, below the database/sql driver a connector wrapper sees.
func TestCommitUnknownGroup(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var fail atomic.Bool
	s, err := Open(context.Background(), Config{URL: "sqlite:" + t.TempDir() + "/m.db", Now: clk.Now,
		WrapConnector: func(c driver.Connector) driver.Connector { return lostCommits{c, &fail} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("fresh", clk.Now(), "a@example.org"),
		newMsg("started", clk.Now(), "b@example.org")}, nil); err != nil {
		t.Fatal(err)
	}
	startedAlone(t, s, "started")
	start := &startRequest{id: "fresh", ends: taskEnds}
	outcome := &outcomeRequest{messageID: "started", outs: []Outcome{{Position: 0, Email: "b@example.org",
		Status: StatusSent, SMTPCode: 250, Event: EventSent}}}
	fail.Store(true)
	writeOps(s, []deliveryOp{{start: start}, {outcome: outcome}})
	if !errors.Is(start.err, ErrCommitUnknown) || len(start.out.Send) != 0 {
		t.Errorf("start = %+v, %v; want no result and ErrCommitUnknown", start.out, start.err)
	}
	if !errors.Is(outcome.err, ErrCommitUnknown) {
		t.Errorf("outcome = %v, want ErrCommitUnknown", outcome.err)
	}
	if err := s.RecordOutcomes(ctx, outcome.messageID, outcome.outs, time.Time{}); err != nil {
		t.Fatalf("outcome written again by its caller: %v", err)
	}
	m, err := s.GetMessage(ctx, DefaultProjectID, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	var attempts int
	if err := s.db.QueryRowContext(ctx, `SELECT attempts FROM messages WHERE id = 'fresh'`).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || m.PossiblyDuplicated {
		t.Errorf("fresh: %d attempts, possibly duplicated %v; want the one committed start, not flagged", attempts, m.PossiblyDuplicated)
	}
	if got := eventTypes(t, s, "started"); fmt.Sprint(got) != "[message.queued b@example.org message.sent b@example.org]" {
		t.Errorf("started events %q, want one message.sent", got)
	}
}

// lostCommits commits, and when fail is set (once) reports the
// connection lost during the COMMIT.
type lostCommits struct {
	driver.Connector
	fail *atomic.Bool
}

func (c lostCommits) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return lostCommitConn{conn, c.fail}, nil
}

type lostCommitConn struct {
	driver.Conn
	fail *atomic.Bool
}

func (c lostCommitConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return lostCommitTx{tx, c.fail}, nil
}

type lostCommitTx struct {
	driver.Tx
	fail *atomic.Bool
}

func (t lostCommitTx) Commit() error {
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	if t.fail.CompareAndSwap(true, false) {
		return fmt.Errorf("connection lost: %w", errors.Join(ErrUnavailable, ErrCommitUnknown))
	}
	return nil
}

// TestOutcomeKeepsAnyReply: a relay's reply is whatever bytes the relay
// sent; one that is not valid UTF-8 or holds a NUL (which PostgreSQL
// refuses in a text column) is still recorded, cleaned, so the outcome of
// a send the relay accepted is never lost to its reply text.
func TestOutcomeKeepsAnyReply(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("raw", clk.Now(), "a@example.org")}, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		startedAlone(t, s, "raw")
		out := Outcome{Position: 0, Email: "a@example.org", Status: StatusSent, SMTPCode: 250,
			SMTPResponse: "250 2.0.0 queued as \xff\xfe\x00ABC", Event: EventSent}
		if err := s.RecordOutcomes(ctx, "raw", []Outcome{out}, time.Time{}); err != nil {
			t.Fatalf("record: %v", err)
		}
		m, err := s.GetMessage(ctx, DefaultProjectID, "raw")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Recipients[0].SMTPResponse, "250 2.0.0 queued as \uFFFDABC"; m.Status != StatusSent || got != want {
			t.Fatalf("status %s, response %q; want sent, %q", m.Status, got, want)
		}
	})
}
