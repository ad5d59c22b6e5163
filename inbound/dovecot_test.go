package inbound

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/internal/dovecot"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/mailbox"
	"github.com/mailgate/mailgate/store"
)

// openDovecot opens a mailbox of the test Dovecot with its CA trusted.
func openDovecot(t *testing.T, srv *dovecot.Server, scheme, path, query string) mailbox.Source {
	t.Helper()
	src, err := mailbox.Open(srv.URL(scheme, path, query), mailbox.Config{
		TLSConfig: &tls.Config{RootCAs: srv.RootCAs}, PollInterval: time.Hour, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatalf("open mailbox: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// waitFor polls cond every 20 ms until it holds, failing after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestDovecotIMAP runs the poller over IMAP (STARTTLS, IDLE) against a real
// Dovecot: a bounce delivered before the start and a reply delivered while
// the poller idles end as events, and both are moved to Processed.
func TestDovecotIMAP(t *testing.T) {
	t.Parallel()
	srv := dovecot.Start(t)
	e := newEnv(t, testsvc.SQLiteURL(t))
	id := e.sentMessage("ann@example.org", "bob@example.net")
	srv.Deliver(t, e.fixture("dsn-userunknown", id, 1, "bob@example.net"))
	src := openDovecot(t, srv, "imap", "/INBOX", "processed=Processed")
	stop := run(t, e.poller(Config{}, src))
	waitFor(t, "the bounce to be processed", func() bool { return srv.Count(t, "Processed") == 1 })
	srv.Deliver(t, e.fixture("reply", id, 0, "ann@example.org"))
	waitFor(t, "the reply to be processed", func() bool {
		return srv.Count(t, "Processed") == 2 && srv.Count(t, "INBOX") == 0
	})
	stop()
	if got := e.recipientStatus(id, 1); got != store.StatusBounced {
		t.Errorf("status %q, want bounced", got)
	}
	var types []string
	for _, ev := range e.events(id) {
		types = append(types, ev[:len("message.bounced bob@example.net")])
	}
	want := []string{"message.bounced bob@example.net", "message.replied ann@example.org"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := e.suppression("bob@example.net"); got != store.ReasonHardBounce {
		t.Errorf("suppression %q, want hard_bounce", got)
	}
}

// TestDovecotPOP3 reads a bounce over POP3 with STLS: the first batch
// records it; the next skips it by its UIDL (the store remembers it), so
// there is still one event.
func TestDovecotPOP3(t *testing.T) {
	t.Parallel()
	srv := dovecot.Start(t)
	e := newEnv(t, testsvc.SQLiteURL(t))
	id := e.sentMessage("ann@example.org")
	srv.Deliver(t, e.fixture("dsn-userunknown", id, 0, "ann@example.org"))
	src := openDovecot(t, srv, "pop3", "", "")
	p := e.poller(Config{}, src)
	ctx := context.Background()
	for i, wantEvents := range []int{1, 1} {
		n, err := p.Batch(ctx, src)
		if err != nil || n != 1 {
			t.Fatalf("batch %d = %d, %v; want 1, nil", i, n, err)
		}
		if got := len(e.events(id)); got != wantEvents {
			t.Errorf("after batch %d: %d events, want %d", i, got, wantEvents)
		}
	}
	if got := e.recipientStatus(id, 0); got != store.StatusBounced {
		t.Errorf("status %q, want bounced", got)
	}
	if got := testutil.ToFloat64(e.metrics.messages.WithLabelValues(src.Name(), "bounce")); got != 1 {
		t.Errorf("inbound messages metric = %v, want 1", got)
	}
}
