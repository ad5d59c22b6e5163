package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCancelMessage(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		sendAt := t0.Add(time.Hour)
		sched := newMsg("sched", t0, "a@example.org", "b@example.org", "c@example.org")
		for i := range sched.Recipients {
			sched.Recipients[i].Status = StatusScheduled
		}
		sched.Recipients[2].Status = StatusSuppressed
		sched.SendAt = &sendAt
		msgs := []NewMessage{sched, newMsg("sent", t0, "d@example.org", "e@example.org"),
			newMsg("half", t0, "f@example.org", "g@example.org")}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		setRecipientStatus(t, s, "sent", StatusSent, 0, 1)
		setRecipientStatus(t, s, "half", StatusSent, 0)

		clk.Advance(time.Minute)
		got, err := s.CancelMessage(ctx, DefaultProjectID, "sched")
		if err != nil {
			t.Fatalf("cancel: %v", err)
		}
		if got.Status != StatusPartial || !got.UpdatedAt.Equal(clk.Now()) {
			t.Errorf("after cancel: status %q updated %v; want partial at %v", got.Status, got.UpdatedAt, clk.Now())
		}
		wantStatuses := []string{StatusCancelled, StatusCancelled, StatusSuppressed}
		if diff := cmp.Diff(wantStatuses, recipientStatuses(got)); diff != "" {
			t.Errorf("recipient statuses (-want +got):\n%s", diff)
		}
		evs, err := s.MessageEvents(ctx, DefaultProjectID, "sched")
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		var summary []string
		for _, ev := range evs {
			summary = append(summary, ev.Type+" "+ev.Recipient)
		}
		wantEvs := []string{EventQueued + " a@example.org", EventQueued + " b@example.org",
			EventSuppressed + " c@example.org", EventCancelled + " a@example.org", EventCancelled + " b@example.org"}
		if diff := cmp.Diff(wantEvs, summary); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if evs[4].Sequence != 5 {
			t.Errorf("last sequence = %d, want 5", evs[4].Sequence)
		}

		if _, err := s.CancelMessage(ctx, DefaultProjectID, "sched"); !errors.Is(err, ErrNotCancellable) {
			t.Errorf("cancel twice = %v, want ErrNotCancellable", err)
		}
		if _, err := s.CancelMessage(ctx, DefaultProjectID, "sent"); !errors.Is(err, ErrNotCancellable) {
			t.Errorf("cancel all sent = %v, want ErrNotCancellable", err)
		}
		if _, err := s.CancelMessage(ctx, DefaultProjectID, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancel unknown = %v, want ErrNotFound", err)
		}
		half, err := s.CancelMessage(ctx, DefaultProjectID, "half")
		if err != nil {
			t.Fatalf("cancel half sent: %v", err)
		}
		if diff := cmp.Diff([]string{StatusSent, StatusCancelled}, recipientStatuses(half)); diff != "" || half.Status != StatusPartial {
			t.Errorf("half sent: status %q, recipients (-want +got):\n%s", half.Status, diff)
		}
	})
}

// setRecipientStatus plays the worker: it moves recipients by position.
func setRecipientStatus(t *testing.T, s *Store, id, status string, positions ...int) {
	t.Helper()
	ctx := context.Background()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, p := range positions {
			if _, err := tx.ExecContext(ctx, `UPDATE recipients SET status = $1 WHERE message_id = $2 AND position = $3`,
				status, id, p); err != nil {
				return err
			}
		}
		return refreshMessageStatus(ctx, tx, id)
	})
	if err != nil {
		t.Fatalf("set recipient status: %v", err)
	}
}

func recipientStatuses(m Message) []string {
	var out []string
	for _, r := range m.Recipients {
		out = append(out, r.Status)
	}
	return out
}
