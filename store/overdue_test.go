package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestNextAttemptDue: a start records its task's deadline as the
// message's next attempt; an outcome's retry time replaces it only once
// the message is left deferred (not while another recipient is still
// sending, nor when no time is given); MessagesOverdue lists a sending or
// deferred message once that time is past, and no other.
func TestNextAttemptDue(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		msgs := []NewMessage{
			newMsg("deferred", clk.Now(), "a@example.org", "b@example.org"),
			newMsg("sending", clk.Now(), "c@example.org"),
			newMsg("sent", clk.Now(), "d@example.org"),
			newMsg("queued", clk.Now(), "e@example.org"),
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		ends := clk.Now().Add(time.Hour)
		for _, id := range []string{"deferred", "sending", "sent"} {
			if _, _, err := s.StartDelivery(ctx, id, ends); err != nil {
				t.Fatal(err)
			}
		}
		retryAt := clk.Now().Add(2 * time.Minute)
		defer451 := func(pos int, email string) Outcome {
			return Outcome{Position: pos, Email: email, Status: StatusDeferred, SMTPCode: 451, Event: EventDeferred}
		}
		if err := s.RecordOutcomes(ctx, "deferred", []Outcome{defer451(0, "a@example.org")}, retryAt); err != nil {
			t.Fatal(err)
		}
		if got := nextAttempt(t, s, "deferred"); !got.Equal(ends) {
			t.Errorf("with b still sending, next attempt %s, want the task's deadline %s", got, ends)
		}
		if err := s.RecordOutcomes(ctx, "deferred", []Outcome{defer451(1, "b@example.org")}, retryAt); err != nil {
			t.Fatal(err)
		}
		if got := nextAttempt(t, s, "deferred"); !got.Equal(retryAt) {
			t.Errorf("deferred: next attempt %s, want the retry %s", got, retryAt)
		}
		if err := s.RecordOutcomes(ctx, "sent", []Outcome{{Position: 0, Email: "d@example.org", Status: StatusSent,
			Event: EventSent}}, retryAt); err != nil {
			t.Fatal(err)
		}
		overdue := func(at time.Time) []string {
			t.Helper()
			refs, err := s.MessagesOverdue(ctx, at, 10)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range refs {
				if !r.Attempted || r.BatchID != "" {
					t.Errorf("overdue %+v, want attempted and no batch", r)
				}
				ids = append(ids, r.ID)
			}
			return ids
		}
		for _, c := range []struct {
			at   time.Time
			want string
		}{
			{retryAt, "[]"},
			{retryAt.Add(time.Microsecond), "[deferred]"},
			{ends.Add(time.Microsecond), "[deferred sending]"},
		} {
			if got := fmt.Sprint(overdue(c.at)); got != c.want {
				t.Errorf("overdue at %s: %s, want %s", c.at, got, c.want)
			}
		}
	})
}

// TestNextAttemptBackfill: migrating to version 7 gives the messages
// started before it (sending or deferred) the two hours after their last
// update that the reconciler used to wait, and no other message a due
// time.
func TestNextAttemptBackfill(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		for migrationStatus(t, s)[6].Applied {
			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("down to 6: %v", err)
			}
		}
		// Version 6's messages rows, written by hand.
		insert := `INSERT INTO messages (id, project_id, from_header, from_domain, status, created_at, updated_at, payload)
			VALUES ($1, $2, 'a@shop.example', 'shop.example', $3, 1, $4, '')`
		if s.dialect == DialectSQLite { // the payload has a table of its own (migration 5)
			insert = `INSERT INTO messages (id, project_id, from_header, from_domain, status, created_at, updated_at)
				VALUES ($1, $2, 'a@shop.example', 'shop.example', $3, 1, $4)`
		}
		updated := clk.Now().Add(-time.Hour)
		for _, m := range []struct{ id, status string }{{"deferred", StatusDeferred}, {"sending", StatusSending},
			{"queued", StatusQueued}} {
			if _, err := s.db.ExecContext(ctx, insert, m.id, DefaultProjectID, m.status, micros(updated)); err != nil {
				t.Fatalf("insert at version 6: %v", err)
			}
		}
		if err := s.MigrateUp(ctx); err != nil {
			t.Fatalf("up to 7: %v", err)
		}
		for _, id := range []string{"deferred", "sending"} {
			if got, want := nextAttempt(t, s, id), updated.Add(2*time.Hour); !got.Equal(want) {
				t.Errorf("%s next attempt %s, want %s", id, got, want)
			}
		}
		if got := nextAttempt(t, s, "queued"); !got.IsZero() {
			t.Errorf("queued next attempt %s, want none", got)
		}
	})
}
