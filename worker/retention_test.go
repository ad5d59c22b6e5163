package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// TestReconcilerRunsRetention: a reconciler pass on a clock seventy days
// on deletes, in batches of two, the old final messages with their events,
// the content of a final message past the content age, the old event of an
// unfinished message, the hour buckets of the event counts of that time,
// old inbound mail and an old idempotency record, and
// logs the counts; the unfinished message, the newer ones and the
// suppression stay, and a second pass finds nothing more.
func TestReconcilerRunsRetention(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			rdb, st := reconcileDeps(t, url)
			day := 24 * time.Hour
			start := time.Now().UTC().Truncate(time.Second)
			id := func(n int) string { return fmt.Sprintf("01900000-0000-7000-8000-0000000001%02d", n) }
			msgs := []store.NewMessage{
				newMessage(id(1), start, nil, store.StatusSuppressed),
				newMessage(id(2), start, nil, store.StatusSuppressed),
				newMessage(id(3), start, nil, store.StatusSuppressed),
				newMessage(id(4), start, nil, store.StatusQueued),                 // old, never final
				newMessage(id(5), start.Add(35*day), nil, store.StatusSuppressed), // past the content age
				newMessage(id(6), start.Add(45*day), nil, store.StatusSuppressed), // new
			}
			for _, m := range msgs { // one by one: each its own send task, no batch
				if _, err := st.CreateMessages(ctx, []store.NewMessage{m}, nil); err != nil {
					t.Fatal(err)
				}
			}
			for i, at := range []time.Time{start, start.Add(time.Hour), start.Add(45 * day)} {
				if _, err := st.RecordInbound(ctx, store.InboundRecord{Mailbox: "mb", MailboxMessageID: fmt.Sprint(i),
					ReceivedAt: at, Kind: "unknown", RawSize: 1, RawHead: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.ClaimIdempotencyKey(ctx, "k", "old", []byte("h"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := st.UpsertSuppression(ctx, store.Suppression{ProjectID: store.DefaultProjectID,
				Email: "b@example.org", Reason: "manual", CreatedAt: start}); err != nil {
				t.Fatal(err)
			}

			var logs bytes.Buffer
			now := start.Add(70 * day)
			w := New(Config{Now: func() time.Time { return now }, Retention: Retention{
				Content: 30 * day, Messages: 60 * day, Events: 60 * day, Inbound: 30 * day, Idempotency: 24 * time.Hour,
				BatchSize: 2,
			}}, Deps{Store: st, Queue: queue.New(queue.Config{}, rdb), Redis: rdb,
				Log: slog.New(slog.NewJSONHandler(&logs, nil))})
			// The rollup counts the first five messages' events in one hour
			// bucket per kind (accepted, suppressed), which retention deletes.
			if _, err := w.RollUpOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.ReconcileOnce(ctx); err != nil {
				t.Fatal(err)
			}
			got := retentionLog(t, logs.String())
			want := map[string]int64{"content": 1, "messages": 3, "message_events": 3, "events": 1,
				"inbound": 2, "idempotency": 1, "event_counts": 2}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("retention logged %s = %d, want %d (log %v)", k, got[k], v, got)
				}
			}
			for i := 1; i <= 3; i++ {
				if _, err := st.GetMessage(ctx, store.DefaultProjectID, id(i)); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("old final message %d: %v, want deleted", i, err)
				}
			}
			for i := 4; i <= 6; i++ {
				if _, err := st.GetMessage(ctx, store.DefaultProjectID, id(i)); err != nil {
					t.Errorf("message %d deleted: %v", i, err)
				}
			}
			if _, err := st.GetSuppression(ctx, store.DefaultProjectID, "b@example.org"); err != nil {
				t.Errorf("suppression deleted: %v", err)
			}
			for i, kept := range []bool{false, false, true} {
				if seen, err := st.InboundSeen(ctx, "mb", fmt.Sprint(i)); err != nil || seen != kept {
					t.Errorf("inbound %d kept = %v, %v; want %v", i, seen, err, kept)
				}
			}

			logs.Reset()
			if err := w.ReconcileOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs.String(), `"msg":"retention"`) {
				t.Fatalf("second pass deleted more: %s", logs.String())
			}
		})
	}
}

// retentionLog reads the counts of the one "retention" line in logs.
func retentionLog(t *testing.T, logs string) map[string]int64 {
	t.Helper()
	var found map[string]int64
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "retention" {
			continue
		}
		if found != nil {
			t.Fatalf("two retention lines in one pass:\n%s", logs)
		}
		found = map[string]int64{}
		var all map[string]any
		if err := json.Unmarshal([]byte(line), &all); err != nil {
			t.Fatal(err)
		}
		for k, v := range all {
			if f, ok := v.(float64); ok {
				found[k] = int64(f)
			}
		}
	}
	if found == nil {
		t.Fatalf("no retention line logged:\n%s", logs)
	}
	return found
}

// TestRetentionBudget: a pass runs at most MaxBatches batches after a full
// one, so a backlog is worked off over several passes: five old messages
// in batches of two, with one batch after a full one a pass, go in two
// passes, four then one.
func TestRetentionBudget(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, store.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if err := st.MigrateUp(ctx); err != nil {
				t.Fatal(err)
			}
			start := time.Now().UTC()
			for i := range 5 {
				m := newMessage(fmt.Sprintf("01900000-0000-7000-8000-0000000002%02d", i), start, nil, store.StatusSuppressed)
				if _, err := st.CreateMessages(ctx, []store.NewMessage{m}, nil); err != nil {
					t.Fatal(err)
				}
			}
			now := start.Add(48 * time.Hour)
			r := newRetention(Retention{Messages: 24 * time.Hour, Idempotency: 24 * time.Hour, BatchSize: 2, MaxBatches: 1},
				st, func() time.Time { return now })
			var got []int64
			for range 4 {
				e, err := r.run(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e.Messages)
			}
			if want := []int64{4, 1, 0, 0}; !slices.Equal(got, want) {
				t.Fatalf("messages deleted per pass %v, want %v", got, want)
			}
		})
	}
}
