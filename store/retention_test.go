package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// count is the number of rows query finds.
func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// retentionFixture writes, on the clock's day, five old messages in final
// statuses (three suppressed, two made sent), two old ones not final
// (queued and deferred) and an old suppression; then, fifty days later,
// three new final ones. It returns the old final, old unfinished and new
// ids.
func retentionFixture(t *testing.T, s *Store, clk *clock) (oldFinal, oldOpen, newer []string) {
	t.Helper()
	ctx := context.Background()
	old := clk.Now()
	var msgs []NewMessage
	for i := range 5 {
		id := fmt.Sprintf("01900000-0000-7000-8000-%012d", i)
		m := newMsg(id, old.Add(time.Duration(i)*time.Millisecond), "a@x.example", "b@x.example")
		for j := range m.Recipients {
			m.Recipients[j].Status = StatusSuppressed
		}
		msgs = append(msgs, m)
		oldFinal = append(oldFinal, id)
	}
	for i := range 2 {
		id := fmt.Sprintf("01900000-0000-7000-8000-%012d", 10+i)
		msgs = append(msgs, newMsg(id, old, "c@x.example"))
		oldOpen = append(oldOpen, id)
	}
	if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE messages SET status = 'sent' WHERE id IN ('` + oldFinal[0] + `', '` + oldFinal[3] + `')`,
		`UPDATE messages SET status = 'deferred' WHERE id = '` + oldOpen[1] + `'`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "a@x.example",
		Reason: "hard_bounce", CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * 24 * time.Hour)
	msgs = nil
	for i := range 3 {
		id := fmt.Sprintf("01900000-0000-7000-8000-%012d", 20+i)
		m := newMsg(id, clk.Now(), "d@x.example")
		m.Recipients[0].Status = StatusSuppressed
		msgs = append(msgs, m)
		newer = append(newer, id)
	}
	if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
		t.Fatal(err)
	}
	return oldFinal, oldOpen, newer
}

// TestExpireMessagesDeletesOnlyOldFinal: batches of two delete the five
// old messages in a final status, with their recipients, tags, payloads
// and events, and nothing else: not the unfinished old ones, not the new
// ones, not the suppression.
func TestExpireMessagesDeletesOnlyOldFinal(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		oldFinal, oldOpen, newer := retentionFixture(t, s, clk)
		if n := count(t, s, `SELECT count(*) FROM events WHERE message_id = $1`, oldFinal[0]); n == 0 {
			t.Fatal("fixture: an old message has no events")
		}
		before := clk.Now().Add(-45 * 24 * time.Hour)
		var got ExpiredMessages
		batches := 0
		for _, st := range FinalStatuses {
			for {
				r, err := s.ExpireMessages(ctx, st, before, 2)
				if err != nil {
					t.Fatal(err)
				}
				if r.Messages > 2 {
					t.Fatalf("a batch of 2 deleted %d messages", r.Messages)
				}
				got.Messages += r.Messages
				got.Events += r.Events
				if r.Messages > 0 {
					batches++
				}
				if r.Messages < 2 {
					break
				}
			}
		}
		// Three suppressed in batches of 2 and 1, two sent in one batch.
		if got.Messages != 5 || got.Events != 10 || batches != 3 {
			t.Fatalf("expired %+v in %d batches; want 5 messages, 10 events (one per recipient), 3 batches", got, batches)
		}
		for _, id := range oldFinal {
			for _, table := range []string{"messages WHERE id", "recipients WHERE message_id", "message_tags WHERE message_id",
				"message_payloads WHERE message_id", "events WHERE message_id"} {
				if n := count(t, s, `SELECT count(*) FROM `+table+` = $1`, id); n != 0 {
					t.Errorf("%s of expired message %s: %d rows left", table, id, n)
				}
			}
		}
		for _, id := range append(append([]string{}, oldOpen...), newer...) {
			if _, err := s.GetMessage(ctx, DefaultProjectID, id); err != nil {
				t.Errorf("message %s, unfinished or new, was deleted: %v", id, err)
			}
			if n := count(t, s, `SELECT count(*) FROM message_payloads WHERE message_id = $1`, id); n != 1 {
				t.Errorf("payload of message %s: %d rows, want 1", id, n)
			}
		}
		if _, err := s.GetSuppression(ctx, DefaultProjectID, "a@x.example"); err != nil {
			t.Errorf("suppression deleted: %v", err)
		}
	})
}

// TestExpireContent: the payloads of the old final messages go in
// batches, their rows, recipients and events stay; the cursor resumes
// past the messages already looked at.
func TestExpireContent(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		oldFinal, oldOpen, newer := retentionFixture(t, s, clk)
		before := clk.Now().Add(-45 * 24 * time.Hour)
		var deleted int64
		cursors := map[string]ContentCursor{}
		for _, st := range FinalStatuses {
			for {
				n, seen, next, err := s.ExpireContent(ctx, st, before, cursors[st], 2)
				if err != nil {
					t.Fatal(err)
				}
				if seen > 2 || n > int64(seen) {
					t.Fatalf("a batch of 2 looked at %d messages and deleted %d payloads", seen, n)
				}
				deleted += n
				cursors[st] = next
				if seen < 2 {
					break
				}
			}
		}
		if deleted != 5 {
			t.Fatalf("deleted %d payloads, want 5", deleted)
		}
		for _, id := range oldFinal {
			if n := count(t, s, `SELECT count(*) FROM message_payloads WHERE message_id = $1`, id); n != 0 {
				t.Errorf("payload of old message %s kept", id)
			}
			m, err := s.GetMessage(ctx, DefaultProjectID, id)
			if err != nil || len(m.Recipients) != 2 {
				t.Errorf("message %s after its content expired = %+v, %v; want it with 2 recipients", id, m, err)
			}
		}
		for _, id := range append(append([]string{}, oldOpen...), newer...) {
			if n := count(t, s, `SELECT count(*) FROM message_payloads WHERE message_id = $1`, id); n != 1 {
				t.Errorf("payload of message %s: %d rows, want 1", id, n)
			}
		}
		// From the cursor, nothing is looked at again.
		n, seen, _, err := s.ExpireContent(ctx, StatusSuppressed, before, cursors[StatusSuppressed], 2)
		if err != nil || n != 0 || seen != 0 {
			t.Fatalf("second pass from the cursor = %d deleted, %d seen, %v; want nothing", n, seen, err)
		}
	})
}

// TestExpireEvents: events older than the cutoff go in id order, in
// batches, stopping at the first newer one; the messages stay.
func TestExpireEvents(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		_, _, newer := retentionFixture(t, s, clk)
		total := count(t, s, `SELECT count(*) FROM events`)
		before := clk.Now().Add(-45 * 24 * time.Hour)
		var deleted int64
		for {
			n, done, err := s.ExpireEvents(ctx, before, 2)
			if err != nil {
				t.Fatal(err)
			}
			if n > 2 {
				t.Fatalf("a batch of 2 deleted %d events", n)
			}
			deleted += n
			if done {
				break
			}
		}
		// 5 old final messages × 2 recipients + 2 old unfinished × 1.
		if deleted != 12 {
			t.Fatalf("deleted %d events, want 12", deleted)
		}
		if left := count(t, s, `SELECT count(*) FROM events`); left != total-12 || left != len(newer) {
			t.Fatalf("%d events left of %d, want the %d of the new messages", left, total, len(newer))
		}
		if n := count(t, s, `SELECT count(*) FROM messages`); n != 10 {
			t.Fatalf("%d messages left, want all 10", n)
		}
	})
}

// TestExpireInbound: inbound mail received before the cutoff goes in
// batches; newer mail stays.
func TestExpireInbound(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		start := clk.Now()
		for i := range 8 {
			at := start.Add(time.Duration(i) * time.Minute)
			if i >= 5 {
				at = start.Add(50 * 24 * time.Hour)
			}
			if _, err := s.RecordInbound(ctx, InboundRecord{Mailbox: "mb", MailboxMessageID: fmt.Sprint(i),
				ReceivedAt: at, Kind: "unknown", RawSize: 3, RawHead: []byte("abc")}); err != nil {
				t.Fatal(err)
			}
		}
		before := start.Add(5 * 24 * time.Hour)
		var deleted int64
		for {
			n, err := s.ExpireInbound(ctx, before, 2)
			if err != nil {
				t.Fatal(err)
			}
			if n > 2 {
				t.Fatalf("a batch of 2 deleted %d", n)
			}
			deleted += n
			if n < 2 {
				break
			}
		}
		if deleted != 5 {
			t.Fatalf("deleted %d inbound records, want 5", deleted)
		}
		for i := range 8 {
			seen, err := s.InboundSeen(ctx, "mb", fmt.Sprint(i))
			if err != nil || seen != (i >= 5) {
				t.Errorf("inbound %d seen = %v, %v; want %v", i, seen, err, i >= 5)
			}
		}
	})
}

// TestExpireIdempotencyKeysInBatches: records older than the cutoff go,
// two at a time; a newer one stays and is still honoured.
func TestExpireIdempotencyKeysInBatches(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		for i := range 5 {
			claimed(t, s, fmt.Sprint("old", i), 202, "{}")
		}
		clk.Advance(IdempotencyTTL + time.Hour)
		claimed(t, s, "new", 202, "{}")
		var deleted int64
		for {
			n, err := s.ExpireIdempotencyKeys(ctx, clk.Now().Add(-IdempotencyTTL), 2)
			if err != nil {
				t.Fatal(err)
			}
			if n > 2 {
				t.Fatalf("a batch of 2 deleted %d", n)
			}
			deleted += n
			if n < 2 {
				break
			}
		}
		if deleted != 5 {
			t.Fatalf("deleted %d records, want 5", deleted)
		}
		st, err := s.ClaimIdempotencyKey(ctx, "k1", "new", []byte("h"), time.Hour)
		if err != nil || !st.InFlight {
			t.Fatalf("claim of the new key = %+v, %v; want it still in flight", st, err)
		}
	})
}

// TestExpireTwoAtOnce: two cleanups at once (two workers) delete every
// old message exactly once between them and neither fails.
func TestExpireTwoAtOnce(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		var msgs []NewMessage
		for i := range 40 {
			m := newMsg(fmt.Sprintf("01900000-0000-7000-8000-%012d", 100+i), clk.Now(), "a@x.example")
			m.Recipients[0].Status = StatusSuppressed
			msgs = append(msgs, m)
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		type result struct {
			n   int64
			err error
		}
		results := make(chan result, 2)
		for range 2 {
			go func() {
				var r result
				for {
					got, err := s.ExpireMessages(ctx, StatusSuppressed, clk.Now(), 3)
					r.n += got.Messages
					if err != nil || got.Messages < 3 {
						r.err = err
						break
					}
				}
				results <- r
			}()
		}
		var total int64
		for range 2 {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			total += r.n
		}
		if left := count(t, s, `SELECT count(*) FROM messages`); total != 40 || left != 0 {
			t.Fatalf("deleted %d between them, %d left; want 40 and 0", total, left)
		}
	})
}

// TestRetentionKeepsPendingWebhookDeliveries: a message or event a webhook
// delivery is still pending for (pending, failed, or made due by a retry)
// stays, with its delivery; delivered and exhausted deliveries go with
// their event, and test deliveries that are done go by the events' age.
func TestRetentionKeepsPendingWebhookDeliveries(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ep := newEndpoint(t, s, "https://hooks.example/", nil, nil, true)
		doneTest, err := s.CreateTestDelivery(ctx, DefaultProjectID, ep.ID, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		pendingTest, err := s.CreateTestDelivery(ctx, DefaultProjectID, ep.ID, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		oldFinal, oldOpen, _ := retentionFixture(t, s, clk)
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		exec(`UPDATE webhook_deliveries SET status = 'delivered', next_attempt_at = NULL`)
		// oldFinal[1] waits for a retry; oldOpen[0] was retried after
		// being exhausted; the pending test delivery is pending.
		exec(`UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = 1
			WHERE event_id IN (SELECT id FROM events WHERE message_id = $1)`, oldFinal[1])
		exec(`UPDATE webhook_deliveries SET status = 'exhausted', next_attempt_at = 1
			WHERE event_id IN (SELECT id FROM events WHERE message_id = $1)`, oldOpen[0])
		exec(`UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = 1 WHERE id = $1`, pendingTest.ID)
		heldEvents := count(t, s, `SELECT count(*) FROM events WHERE message_id IN ($1, $2)`, oldFinal[1], oldOpen[0])
		if heldEvents != 3 {
			t.Fatalf("fixture: %d events held, want 3", heldEvents)
		}

		before := clk.Now().Add(-45 * 24 * time.Hour)
		expireMessages := func() int64 {
			var n int64
			for _, st := range FinalStatuses {
				r, err := s.ExpireMessages(ctx, st, before, 100)
				if err != nil {
					t.Fatal(err)
				}
				n += r.Messages
			}
			return n
		}
		if n := expireMessages(); n != 4 {
			t.Fatalf("expired %d messages, want 4 (one held by its pending deliveries)", n)
		}
		if n := count(t, s, `SELECT count(*) FROM messages WHERE id = $1`, oldFinal[1]); n != 1 {
			t.Fatal("a message with pending webhook deliveries was deleted")
		}
		for {
			_, done, err := s.ExpireEvents(ctx, before, 1)
			if err != nil {
				t.Fatal(err)
			}
			if done {
				break
			}
		}
		// Left: the held events and the new messages' three.
		if n := count(t, s, `SELECT count(*) FROM events WHERE created_at < $1`, micros(before)); n != heldEvents {
			t.Fatalf("%d old events left, want the %d held", n, heldEvents)
		}
		if n := count(t, s, `SELECT count(*) FROM webhook_deliveries WHERE event_id IS NOT NULL AND status = 'delivered'
			AND created_at < $1`, micros(before)); n != 0 {
			t.Fatalf("%d old delivered deliveries left", n)
		}
		if n := count(t, s, `SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL`); n != 4 {
			t.Fatalf("%d pending deliveries left, want 4", n)
		}
		if n, err := s.ExpireTestDeliveries(ctx, before, 100); err != nil || n != 1 {
			t.Fatalf("expired %d test deliveries, %v; want 1", n, err)
		}
		if n := count(t, s, `SELECT count(*) FROM webhook_deliveries WHERE id IN ($1, $2)`, doneTest.ID, pendingTest.ID); n != 1 {
			t.Fatalf("%d test deliveries left, want the pending one", n)
		}

		exec(`UPDATE webhook_deliveries SET status = 'exhausted', next_attempt_at = NULL`)
		if n := expireMessages(); n != 1 {
			t.Fatalf("expired %d messages once exhausted, want 1", n)
		}
		if n := count(t, s, `SELECT count(*) FROM webhook_deliveries WHERE event_id IS NOT NULL AND created_at < $1`,
			micros(before)); n != 1 {
			// oldOpen[0]'s event, of an unfinished message, waits for ExpireEvents.
			t.Fatalf("%d old event deliveries left, want 1", n)
		}
	})
}
