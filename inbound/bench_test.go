package inbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/internal/dovecot"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/mailbox"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/verp"
)

// BenchmarkPollerDovecot measures the poller from a real Dovecot to
// committed events: b.N bounces (testdata/roundtrip/dsn.eml, each to the
// VERP address of a distinct sent message) wait in the Maildir INBOX; the
// timer runs from the first Fetch over IMAP (STARTTLS) to the Batch that
// commits the last message.bounced event and moves the last report to
// Processed, with the default Config (batches of 50). It reports msgs/s;
// the target is 300. One sub-benchmark per engine; MAILGATE_BENCH_INBOUND_ENGINES
// ("sqlite postgres" by default) picks them. Run it with a fixed count:
//
//	go test -run '^$' -bench PollerDovecot -benchtime 2000x ./inbound/
func BenchmarkPollerDovecot(b *testing.B) {
	engines := strings.Fields(os.Getenv("MAILGATE_BENCH_INBOUND_ENGINES"))
	if len(engines) == 0 {
		engines = []string{"sqlite", "postgres"}
	}
	for _, engine := range engines {
		b.Run(engine, func(b *testing.B) {
			switch engine {
			case "sqlite":
				benchPoller(b, testsvc.SQLiteURL(b))
			case "postgres":
				benchPoller(b, testsvc.PostgresURL(b))
			default:
				b.Fatalf("unknown engine %q (want sqlite or postgres)", engine)
			}
		})
	}
}

// benchPoller is one run over b.N bounces on the database at url.
func benchPoller(b *testing.B, url string) {
	ctx := context.Background()
	bp := newBenchParts(b, url)
	srv := dovecot.Start(b)
	ids := bp.sentMessages(b, b.N)
	for i, id := range ids {
		srv.Deliver(b, bp.bounceOf(b, id, i))
	}
	src, err := mailbox.Open(srv.URL("imap", "/INBOX", "processed=Processed"), mailbox.Config{
		TLSConfig: &tls.Config{RootCAs: srv.RootCAs}, PollInterval: time.Hour, IdleTimeout: time.Hour})
	if err != nil {
		b.Fatalf("open mailbox: %v", err)
	}
	defer func() { _ = src.Close() }()
	p := bp.poller(b, src)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n, err := p.Batch(ctx, src)
		if err != nil {
			b.Fatalf("batch after %d of %d: %v", done, b.N, err)
		}
		if n == 0 {
			b.Fatalf("mailbox empty after %d of %d", done, b.N)
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	bp.check(b, srv, src.Name(), ids)
}

// benchParts are the poller's collaborators for a benchmark.
type benchParts struct {
	st      *store.Store
	deps    Deps
	clock   *clock
	prefix  string
	headers string
}

func newBenchParts(b *testing.B, url string) *benchParts {
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	st, err := store.Open(ctx, store.Config{URL: url, Now: clk.Now, MaxOpenConns: 8})
	if err != nil {
		b.Fatalf("open store: %v", err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(b, inboundTestRedisDB))
	if err != nil {
		b.Fatalf("open redis: %v", err)
	}
	b.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		testsvc.Missing(b, "redis", err)
	}
	kr, err := keyring.Generated()
	if err != nil {
		b.Fatalf("keyring: %v", err)
	}
	return &benchParts{st: st, clock: clk, prefix: "mailgate-bench:inbound:" + uuid.NewString() + ":",
		deps:    Deps{Store: st, Redis: rdb, VERP: verp.New(kr, returnPathDomain), Metrics: NewMetrics()},
		headers: string(readRoundtrip(b, "headers.txt"))}
}

// sentMessages stores n messages of one recipient each, sent as the
// worker records it, in batches of 500, and returns their ids.
func (bp *benchParts) sentMessages(b *testing.B, n int) []string {
	ctx := context.Background()
	ids := make([]string, 0, n)
	for start := 0; start < n; start += 500 {
		var batch []store.NewMessage
		for i := start; i < min(n, start+500); i++ {
			id := newMessageID(b)
			ids = append(ids, id)
			batch = append(batch, store.NewMessage{ID: id, ProjectID: store.DefaultProjectID, KeyID: "k1",
				From: "Shop <orders@shop.example>", FromDomain: "shop.example", Subject: "Your order #1234",
				Tags: []string{}, Metadata: map[string]string{}, Payload: store.Payload{Request: []byte(`{}`)}, CreatedAt: bp.clock.Now(),
				Recipients: []store.NewRecipient{{Email: benchRcpt(i), Kind: store.KindTo, Status: store.StatusQueued}}})
		}
		if _, err := bp.st.CreateMessages(ctx, batch, nil); err != nil {
			b.Fatalf("create messages: %v", err)
		}
	}
	for i, id := range ids {
		if _, _, err := bp.st.StartDelivery(ctx, id, time.Now().Add(time.Hour)); err != nil {
			b.Fatalf("begin attempt: %v", err)
		}
		out := store.Outcome{Position: 0, Email: benchRcpt(i), Status: store.StatusSent, SMTPCode: 250, Event: store.EventSent}
		if err := bp.st.RecordOutcomes(ctx, id, []store.Outcome{out}, time.Time{}); err != nil {
			b.Fatalf("record outcome: %v", err)
		}
	}
	return ids
}

// benchRcpt is the recipient of the i-th message.
func benchRcpt(i int) string { return fmt.Sprintf("user%d@example.net", i) }

// bounceOf is the hard bounce of message id's recipient (the i-th).
func (bp *benchParts) bounceOf(b *testing.B, id string, i int) []byte {
	addr, err := bp.deps.VERP.Address(id, 0)
	if err != nil {
		b.Fatalf("verp address: %v", err)
	}
	rcpt := benchRcpt(i)
	headers := strings.NewReplacer("{{RCPT}}", rcpt, "{{ID}}", id).Replace(bp.headers)
	return dsn(b, addr, rcpt, headers, fmt.Sprintf("bench%d", i))
}

// poller is the poller over src with the default Config.
func (bp *benchParts) poller(b *testing.B, src Source) *Poller {
	deps := bp.deps
	deps.Sources = []Source{src}
	p, err := New(Config{Now: bp.clock.Now, LockPrefix: bp.prefix}, deps)
	if err != nil {
		b.Fatalf("inbound.New: %v", err)
	}
	return p
}

// check makes sure the run did the work it timed: every report counted
// as a bounce and moved, the first and last recipients bounced.
func (bp *benchParts) check(b *testing.B, srv *dovecot.Server, mailboxName string, ids []string) {
	if got := testutil.ToFloat64(bp.deps.Metrics.messages.WithLabelValues(mailboxName, "bounce")); int(got) != len(ids) {
		b.Fatalf("%v bounces processed, want %d", got, len(ids))
	}
	if got := testutil.ToFloat64(bp.deps.Metrics.unmatched.WithLabelValues(mailboxName)); got != 0 {
		b.Fatalf("%v reports unmatched, want 0", got)
	}
	if in, done := srv.Count(b, "INBOX"), srv.Count(b, "Processed"); in != 0 || done != len(ids) {
		b.Fatalf("INBOX %d, Processed %d; want 0, %d", in, done, len(ids))
	}
	for _, id := range []string{ids[0], ids[len(ids)-1]} {
		m, err := bp.st.GetMessage(context.Background(), store.DefaultProjectID, id)
		if err != nil {
			b.Fatalf("get message: %v", err)
		}
		if st := m.Recipients[0].Status; st != store.StatusBounced {
			b.Fatalf("message %s recipient %s, want bounced", id, st)
		}
	}
}
