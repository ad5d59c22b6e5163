package worker

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/store"
)

// BenchmarkRetentionPass measures a retention pass over a PostgreSQL
// database of MAILGATE_BENCH_RETENTION_ROWS messages (unset: skipped; the
// figure in docs/performance.md uses 1000000), each sent to one recipient,
// with one tag, two events and a payload of 2 KB of text and HTML, all
// created 100 days before the clock. Two passes are timed, each with
// every batch of the default size and no bound on their number: the
// content pass at 50 days (every payload deleted, the rows stay), then the
// messages pass at 100 days (every message deleted with its recipients,
// tags and events). Meanwhile 16 goroutines create messages one at a time
// (store.CreateMessages, as POST /v1/messages does); their rate during
// each pass is reported beside their rate right after it, with no pass
// running, for as long (at most 30 s). Run it by hand, once:
//
//	MAILGATE_BENCH_RETENTION_ROWS=1000000 go test -run '^$' -bench RetentionPass -benchtime 1x -timeout 60m ./worker/
func BenchmarkRetentionPass(b *testing.B) {
	rows, _ := strconv.Atoi(os.Getenv("MAILGATE_BENCH_RETENTION_ROWS"))
	if rows <= 0 {
		b.Skip("MAILGATE_BENCH_RETENTION_ROWS unset")
	}
	ctx := context.Background()
	url := testsvc.PostgresURL(b)
	st, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.MigrateUp(ctx); err != nil {
		b.Fatal(err)
	}
	created := time.Now().Add(-100 * 24 * time.Hour)
	t0 := time.Now()
	if err := generateMessages(ctx, url, rows, created); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d messages in %v", rows, time.Since(t0).Round(time.Second))

	day := 24 * time.Hour
	for _, pass := range []struct {
		name string
		now  time.Time
		cfg  Retention
	}{
		{"content", created.Add(50 * day), Retention{Content: 45 * day}},
		{"messages", created.Add(100 * day), Retention{Content: 45 * day, Messages: 90 * day, Events: 90 * day}},
	} {
		pass.cfg.MaxBatches = 1 << 30
		r := newRetention(pass.cfg, st, time.Now)
		r.now = func() time.Time { return time.Now().Add(pass.now.Sub(created.Add(100 * day))) }
		var took time.Duration
		var expired Expired
		during := createRate(ctx, b, st, func() {
			start := time.Now()
			if expired, err = r.run(ctx); err != nil {
				b.Error(err)
			}
			took = time.Since(start)
		})
		// Then with no pass running, for as long (at most 30 s).
		alone := createRate(ctx, b, st, func() { time.Sleep(min(took, 30*time.Second)) })
		b.Logf("%s pass: %v for %+v; creates during it %.0f/s, alone %.0f/s",
			pass.name, took.Round(100*time.Millisecond), expired, during, alone)
		b.ReportMetric(took.Seconds(), pass.name+"-pass-s")
		b.ReportMetric(during, pass.name+"-creates-during/s")
		b.ReportMetric(alone, pass.name+"-creates-alone/s")
	}
}

// createRate runs 16 goroutines creating messages one at a time while
// work runs and returns how many they created per second.
func createRate(ctx context.Context, b *testing.B, st *store.Store, work func()) float64 {
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := store.NewMessage{ID: uuid.Must(uuid.NewV7()).String(), ProjectID: store.DefaultProjectID,
					KeyID: "k", From: "a@shop.example", FromDomain: "shop.example", Subject: "s",
					Payload:    store.Payload{Request: []byte(`{}`), Text: "hello"},
					Recipients: []store.NewRecipient{{Email: "b@example.org", Kind: store.KindTo, Status: store.StatusQueued}}}
				if _, err := st.CreateMessages(ctx, []store.NewMessage{m}, nil); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	start := time.Now()
	work()
	close(stop)
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// generateMessages writes rows sent messages created at created (a
// microsecond apart), with their recipients, tags, events and payloads,
// by INSERT … SELECT generate_series, then VACUUM ANALYZE.
func generateMessages(ctx context.Context, url string, rows int, created time.Time) error {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	c := created.UnixMicro()
	id := `'01800000-0000-7000-8000-' || lpad(i::text, 12, '0')`
	for _, q := range []string{
		`INSERT INTO messages (id, project_id, key_id, from_header, from_domain, subject, status, tags, event_seq, attempts,
			created_at, updated_at)
		 SELECT ` + id + `, '` + store.DefaultProjectID + `', 'k', 'a@shop.example', 'shop.example', 'subject ' || i,
			'sent', '["t"]', 2, 1, $1::bigint + i, $1::bigint + i FROM generate_series(1, $2) AS i`,
		`INSERT INTO recipients (message_id, position, email, email_lc, kind, status, smtp_code, smtp_response, updated_at)
		 SELECT ` + id + `, 0, 'r' || i || '@example.org', 'r' || i || '@example.org', 'to', 'sent', 250, '2.0.0 Ok', $1::bigint + i
		 FROM generate_series(1, $2) AS i`,
		`INSERT INTO message_tags (message_id, tag) SELECT ` + id + `, 't' FROM generate_series(1, $1) AS i`,
		`INSERT INTO events (project_id, message_id, recipient, type, sequence, data, created_at)
		 SELECT '` + store.DefaultProjectID + `', ` + id + `, 'r' || i || '@example.org', e.type, e.seq, '{}', $1::bigint + i
		 FROM generate_series(1, $2) AS i, (VALUES ('message.queued', 1), ('message.sent', 2)) AS e (type, seq)
		 ORDER BY i, e.seq`,
		`INSERT INTO message_payloads (message_id, request, text, html)
		 SELECT ` + id + `, '{"subject":"s"}', convert_to(repeat(md5(i::text), 32), 'UTF8'),
			convert_to(repeat(md5((i + 1)::text), 32), 'UTF8')
		 FROM generate_series(1, $1) AS i`,
	} {
		args := []any{c, rows}
		if !strings.Contains(q, "$1::bigint") { // the row count alone
			args = []any{rows}
		}
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	_, err = db.ExecContext(ctx, `VACUUM ANALYZE`)
	return err
}
