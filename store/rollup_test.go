package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// addEvents appends evs to a message's event log at at, as every writer
// of the event log does (appendEvents).
func addEvents(t *testing.T, s *Store, projectID, messageID string, at time.Time, evs ...eventInput) {
	t.Helper()
	err := s.inTx(context.Background(), func(tx *sql.Tx) error {
		return s.appendEvents(context.Background(), tx, projectID, messageID, evs, at)
	})
	if err != nil {
		t.Fatalf("append events to %s: %v", messageID, err)
	}
}

// create writes msgs (CreateMessages).
func create(t *testing.T, s *Store, msgs ...NewMessage) {
	t.Helper()
	if _, err := s.CreateMessages(context.Background(), msgs, nil); err != nil {
		t.Fatalf("create messages: %v", err)
	}
}

// countRows is event_counts as "project domain width start kind" → count,
// with start relative to base.
func countRows(t *testing.T, s *Store, base time.Time) map[string]int64 {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(),
		`SELECT project_id, from_domain, width, bucket_start, kind, count FROM event_counts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var project, domain, kind string
		var width, start, n int64
		if err := rows.Scan(&project, &domain, &width, &start, &kind, &n); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprintf("%s %s %d %v %s", projectLabel(project), domain, width, fromMicros(start).Sub(base), kind)] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// projectLabel shortens the default project's id in countRows' keys.
func projectLabel(id string) string {
	if id == DefaultProjectID {
		return "A"
	}
	return "B"
}

// position is the rollup's last event id and as_of.
func position(t *testing.T, s *Store) (int64, time.Time) {
	t.Helper()
	var id, asOf int64
	if err := s.db.QueryRow(`SELECT last_event_id, as_of FROM event_rollup WHERE id = 1`).Scan(&id, &asOf); err != nil {
		t.Fatal(err)
	}
	return id, fromMicros(asOf)
}

func maxEventID(t *testing.T, s *Store) int64 {
	t.Helper()
	var id int64
	if err := s.db.QueryRow(`SELECT MAX(id) FROM events`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// fromDomain is newMsg from another sender domain.
func fromDomain(m NewMessage, domain string) NewMessage {
	m.From, m.FromDomain = "news@"+domain, domain
	return m
}

// TestRollUpEvents: a pass counts every kind per project, sender domain,
// minute and hour; a bounce by its type; events without a message or of
// a type not counted move the position only; a second pass adds nothing.
func TestRollUpEvents(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now() // 09:00:00
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		m1 := newMsg("m1", t0, "a@example.org", "b@example.org", "c@example.org")
		m1.Recipients[2].Status = StatusSuppressed
		sendAt := t0.Add(time.Hour)
		sched := newMsg("sched", t0.Add(30*time.Second), "d@example.org")
		sched.Recipients[0].Status, sched.SendAt = StatusScheduled, &sendAt
		news := fromDomain(newMsg("m2", t0.Add(90*time.Second), "e@example.org"), "news.example")
		theirs := newMsg("m3", t0, "f@example.org")
		theirs.ProjectID = other.ID
		create(t, s, m1, sched, news, theirs)

		t1 := t0.Add(2 * time.Minute)
		addEvents(t, s, DefaultProjectID, "m1", t1,
			eventInput{Recipient: "a@example.org", Type: EventSent},
			eventInput{Recipient: "b@example.org", Type: EventDeferred},
			eventInput{Recipient: "b@example.org", Type: EventFailed})
		t2 := t0.Add(61 * time.Minute) // the next hour
		addEvents(t, s, DefaultProjectID, "m1", t2,
			eventInput{Recipient: "a@example.org", Type: EventBounced, Data: []byte(`{"type":"hard","reason":"x"}`)},
			eventInput{Recipient: "a@example.org", Type: EventBounced, Data: []byte(`{"type":"soft"}`)},
			eventInput{Recipient: "a@example.org", Type: EventComplained},
			eventInput{Recipient: "a@example.org", Type: EventReplied},
			eventInput{Recipient: "a@example.org", Type: EventAutoReplied})
		addEvents(t, s, DefaultProjectID, "sched", t2, eventInput{Recipient: "d@example.org", Type: EventCancelled})
		addEvents(t, s, other.ID, "m3", t2, eventInput{Recipient: "f@example.org", Type: EventSent})
		if _, err := s.db.Exec(`INSERT INTO events (project_id, message_id, recipient, type, sequence, data, created_at)
			VALUES ($1, NULL, '', $2, 0, '{"domain":"shop.example"}', $3)`, DefaultProjectID,
			EventDomainVerified, micros(t2)); err != nil {
			t.Fatal(err)
		}

		now := t0.Add(2 * time.Hour)
		n, err := s.RollUpEvents(ctx, now, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n != 17 {
			t.Errorf("the pass took %d events, want 17 (all)", n)
		}
		// Minute buckets start at the event's minute, hour buckets at its
		// hour (09:00 or 10:00), given here from t0.
		want := map[string]int64{
			"A shop.example 60 0s accepted":   3, // m1's two recipients and the scheduled one
			"A shop.example 60 0s suppressed": 1,
			"A news.example 60 1m0s accepted": 1,
			"B shop.example 60 0s accepted":   1,
			"A shop.example 60 2m0s sent":     1,
			"A shop.example 60 2m0s deferred": 1,
			"A shop.example 60 2m0s failed":   1,

			"A shop.example 60 1h1m0s bounced_hard": 1,
			"A shop.example 60 1h1m0s bounced_soft": 1,
			"A shop.example 60 1h1m0s complained":   1,
			"A shop.example 60 1h1m0s replied":      1,
			"A shop.example 60 1h1m0s cancelled":    1,
			"B shop.example 60 1h1m0s sent":         1,

			"A shop.example 3600 0s accepted":   3,
			"A shop.example 3600 0s suppressed": 1,
			"A news.example 3600 0s accepted":   1,
			"B shop.example 3600 0s accepted":   1,
			"A shop.example 3600 0s sent":       1,
			"A shop.example 3600 0s deferred":   1,
			"A shop.example 3600 0s failed":     1,

			"A shop.example 3600 1h0m0s bounced_hard": 1,
			"A shop.example 3600 1h0m0s bounced_soft": 1,
			"A shop.example 3600 1h0m0s complained":   1,
			"A shop.example 3600 1h0m0s replied":      1,
			"A shop.example 3600 1h0m0s cancelled":    1,
			"B shop.example 3600 1h0m0s sent":         1,
		}
		if d := cmp.Diff(want, countRows(t, s, t0)); d != "" {
			t.Errorf("event_counts (-want +got):\n%s", d)
		}
		pos, asOf := position(t, s)
		if last := maxEventID(t, s); pos != last {
			t.Errorf("position %d, want the last event %d", pos, last)
		}
		if wantAsOf := now.Add(-s.rollupLag); !asOf.Equal(wantAsOf) {
			t.Errorf("as_of %v, want %v", asOf, wantAsOf)
		}

		if n, err := s.RollUpEvents(ctx, now, 1000); err != nil || n != 0 {
			t.Errorf("second pass: %d, %v; want 0 events", n, err)
		}
		if d := cmp.Diff(want, countRows(t, s, t0)); d != "" {
			t.Errorf("after a second pass (-want +got):\n%s", d)
		}
	})
}

// TestRollUpBatchesAndMinutes: a pass takes at most limit events and the
// next goes on from there; events older than MinuteCountsKept get an hour
// bucket only, and older minute buckets are deleted.
func TestRollUpBatchesAndMinutes(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		create(t, s, newMsg("old", t0.Add(-4*time.Hour), "a@example.org", "b@example.org"),
			newMsg("new", t0.Add(-time.Hour), "c@example.org", "d@example.org", "e@example.org"))
		if n, err := s.RollUpEvents(ctx, t0, 3); err != nil || n != 3 {
			t.Fatalf("first pass: %d, %v; want 3", n, err)
		}
		pos, asOf := position(t, s)
		if n, err := s.RollUpEvents(ctx, t0, 3); err != nil || n != 2 {
			t.Fatalf("second pass: %d, %v; want the 2 left", n, err)
		}
		if pos2, _ := position(t, s); pos2 != pos+2 || pos2 != maxEventID(t, s) {
			t.Errorf("positions %d then %d, want +2 and the last event", pos, pos2)
		}
		if want := t0.Add(-time.Hour); !asOf.Equal(want) {
			t.Errorf("as_of after a full pass %v, want the last event taken's time %v", asOf, want)
		}
		want := map[string]int64{
			"A shop.example 3600 -4h0m0s accepted": 2,
			"A shop.example 3600 -1h0m0s accepted": 3,
			"A shop.example 60 -1h0m0s accepted":   3,
		}
		if d := cmp.Diff(want, countRows(t, s, t0)); d != "" {
			t.Errorf("event_counts (-want +got):\n%s", d)
		}
		if _, err := s.RollUpEvents(ctx, t0.Add(3*time.Hour), 3); err != nil {
			t.Fatal(err)
		}
		delete(want, "A shop.example 60 -1h0m0s accepted")
		if d := cmp.Diff(want, countRows(t, s, t0)); d != "" {
			t.Errorf("three hours later (-want +got):\n%s", d)
		}
	})
}

// TestRollUpLag: with a lag, a pass stops at the first event created
// less than the lag ago (in id order) and takes it once it is old enough.
func TestRollUpLag(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		s.rollupLag = 30 * time.Second
		t0 := clk.Now()
		// One at a time, so that their ids are in this order; c has a later
		// id than b and an older time, and waits behind b.
		create(t, s, newMsg("a", t0.Add(-time.Minute), "a@example.org"))
		create(t, s, newMsg("b", t0.Add(-10*time.Second), "b@example.org"))
		create(t, s, newMsg("c", t0.Add(-time.Hour), "c@example.org"))
		if n, err := s.RollUpEvents(ctx, t0, 100); err != nil || n != 1 {
			t.Fatalf("pass at t0: %d, %v; want only a's event", n, err)
		}
		if _, asOf := position(t, s); !asOf.Equal(t0.Add(-30 * time.Second)) {
			t.Errorf("as_of %v, want t0-30s", asOf)
		}
		if n, err := s.RollUpEvents(ctx, t0.Add(30*time.Second), 100); err != nil || n != 2 {
			t.Fatalf("pass 30 s later: %d, %v; want b's and c's", n, err)
		}
		want := map[string]int64{
			"A shop.example 3600 -1h0m0s accepted": 3,
			"A shop.example 60 -1m0s accepted":     2,
			"A shop.example 60 -1h0m0s accepted":   1,
		}
		if d := cmp.Diff(want, countRows(t, s, t0)); d != "" {
			t.Errorf("event_counts (-want +got):\n%s", d)
		}
	})
}

// TestRollUpConcurrent: passes run at once by several workers count each
// event once.
func TestRollUpConcurrent(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		const messages = 120
		var msgs []NewMessage
		for i := range messages {
			msgs = append(msgs, newMsg(fmt.Sprintf("m%03d", i), t0.Add(-time.Duration(i)*time.Second), "a@example.org"))
		}
		create(t, s, msgs...)
		var wg sync.WaitGroup
		var mu sync.Mutex
		taken := 0
		for range 3 {
			wg.Go(func() {
				for {
					n, err := s.RollUpEvents(ctx, t0.Add(time.Minute), 7)
					mu.Lock()
					taken += n
					mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
					if n < 7 {
						return
					}
				}
			})
		}
		wg.Wait()
		if taken != messages {
			t.Errorf("the passes took %d events in all, want %d", taken, messages)
		}
		var hour, minute int64
		if err := s.db.QueryRow(`SELECT COALESCE(SUM(CASE WHEN width = 3600 THEN count END), 0),
			COALESCE(SUM(CASE WHEN width = 60 THEN count END), 0) FROM event_counts`).Scan(&hour, &minute); err != nil {
			t.Fatal(err)
		}
		if hour != messages || minute != messages {
			t.Errorf("counted %d in hour and %d in minute buckets, want %d in each", hour, minute, messages)
		}
	})
}

// TestExpireEventCounts: retention deletes the hour buckets that end
// before its cutoff, and no other.
func TestExpireEventCounts(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now() // on the hour
		create(t, s, newMsg("a", t0.Add(-50*time.Hour), "a@example.org"), newMsg("b", t0.Add(-47*time.Hour), "b@example.org"),
			newMsg("c", t0.Add(-time.Minute), "c@example.org"))
		if _, err := s.RollUpEvents(ctx, t0, 100); err != nil {
			t.Fatal(err)
		}
		n, err := s.ExpireEventCounts(ctx, t0.Add(-47*time.Hour), 100)
		if err != nil || n != 1 {
			t.Fatalf("expire: %d, %v; want the 50-hour-old bucket", n, err)
		}
		want := map[string]int64{
			"A shop.example 3600 -47h0m0s accepted": 1,
			"A shop.example 3600 -1h0m0s accepted":  1,
			"A shop.example 60 -1m0s accepted":      1,
		}
		if d := cmp.Diff(want, countRows(t, s, t0)); d != "" {
			t.Errorf("event_counts (-want +got):\n%s", d)
		}
	})
}
