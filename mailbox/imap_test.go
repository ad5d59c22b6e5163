package mailbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/internal/dovecot"
)

var fixtures = []string{"plain.eml", "dotted.eml", "autoreply.eml"}

// deliverFixtures puts every fixture into INBOX and returns their bytes.
func deliverFixtures(t *testing.T, s *dovecot.Server) [][]byte {
	t.Helper()
	var raws [][]byte
	for _, name := range fixtures {
		raw := fixture(t, name)
		s.Deliver(t, raw)
		raws = append(raws, raw)
	}
	return raws
}

// openDovecot opens scheme on the server with its CA trusted.
func openDovecot(t *testing.T, s *dovecot.Server, scheme, path, query string, cfg Config) Source {
	t.Helper()
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = &tls.Config{RootCAs: s.RootCAs}
	}
	cfg.Log = testLog(t)
	src, err := Open(s.URL(scheme, path, query), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// uidValidity reads INBOX's UIDVALIDITY from Dovecot's uidlist header
// ("3 V<uidvalidity> N<next> …").
func uidValidity(t *testing.T, s *dovecot.Server) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.MaildirPath, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^\d+ V(\d+) `).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no uidvalidity in %q", data)
	}
	return string(m[1])
}

// TestIMAPFetchDone runs the poller's cycle over STARTTLS with a processed
// folder (messages move) and over implicit TLS without one (messages stay,
// \Seen).
func TestIMAPFetchDone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scheme, query string
		wantInbox     int
		wantProcessed int
	}{
		{scheme: "imap", query: "processed=Processed", wantInbox: 0, wantProcessed: 3},
		{scheme: "imaps", query: "", wantInbox: 3, wantProcessed: 0},
	}
	for _, tt := range tests {
		t.Run(tt.scheme+"?"+tt.query, func(t *testing.T) {
			t.Parallel()
			s := dovecot.Start(t)
			raws := deliverFixtures(t, s)
			src := openDovecot(t, s, tt.scheme, "/INBOX", tt.query, Config{})
			ctx := testCtx(t)

			first, err := src.Fetch(ctx, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := uidValidity(t, s)
			want := []Message{{ID: v + ":1", Raw: raws[0]}, {ID: v + ":2", Raw: raws[1]}}
			if diff := cmp.Diff(want, first); diff != "" {
				t.Fatalf("first Fetch (-want +got):\n%s", diff)
			}
			rest, err := src.Fetch(ctx, 10, skipSet(ids(first)...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]Message{{ID: v + ":3", Raw: raws[2]}}, rest); diff != "" {
				t.Fatalf("Fetch with skip (-want +got):\n%s", diff)
			}
			if err := src.Done(ctx, append(ids(first), ids(rest)...)); err != nil {
				t.Fatal(err)
			}
			assertCounts(t, s, tt.wantInbox, tt.wantProcessed)
			again, err := src.Fetch(ctx, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(again) != 0 {
				t.Errorf("Fetch after Done returned %v", ids(again))
			}
		})
	}
}

// assertCounts checks where the messages are and that all are \Seen
// (Maildir info ":2,…S…", the flag Dovecot stores \Seen as).
func assertCounts(t *testing.T, s *dovecot.Server, inbox, processed int) {
	t.Helper()
	if got := s.Count(t, "INBOX"); got != inbox {
		t.Errorf("Count(INBOX) = %d, want %d", got, inbox)
	}
	if got := s.Count(t, "Processed"); got != processed {
		t.Errorf("Count(Processed) = %d, want %d", got, processed)
	}
	dir := filepath.Join(s.MaildirPath, "cur")
	if processed > 0 {
		dir = filepath.Join(s.MaildirPath, ".Processed", "cur")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, info, _ := strings.Cut(e.Name(), ":2,")
		if !strings.Contains(info, "S") {
			t.Errorf("%s is not \\Seen", e.Name())
		}
	}
}

// TestIMAPDelete: delete=true expunges processed messages.
func TestIMAPDelete(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t)
	deliverFixtures(t, s)
	src := openDovecot(t, s, "imaps", "", "delete=true", Config{})
	ctx := testCtx(t)
	msgs, err := src.Fetch(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Done(ctx, ids(msgs)); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(t, "INBOX"); got != 1 {
		t.Errorf("Count(INBOX) = %d, want 1", got)
	}
}

// TestIMAPIdle: Wait returns soon after a delivery (IDLE, RFC 2177), with
// the poll interval and idle timeout far away; and returns ctx.Err() when
// the context ends.
func TestIMAPIdle(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t)
	src := openDovecot(t, s, "imaps", "/INBOX", "", Config{PollInterval: time.Hour, IdleTimeout: time.Hour})
	ctx := testCtx(t)
	if msgs, err := src.Fetch(ctx, 10, nil); err != nil || len(msgs) != 0 {
		t.Fatalf("Fetch on empty mailbox = %v, %v", msgs, err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Wait(ctx) }()
	raw := fixture(t, "plain.eml")
	s.Deliver(t, raw)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after a delivery")
	}
	msgs, err := src.Fetch(ctx, 10, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Raw) != string(raw) {
		t.Fatalf("Fetch after Wait = %v, %v", ids(msgs), err)
	}

	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- src.Wait(cctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
}

// TestIMAPReconnect: a dropped connection is replaced on the next call.
func TestIMAPReconnect(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t)
	deliverFixtures(t, s)
	src := openDovecot(t, s, "imap", "/INBOX", "", Config{})
	ctx := testCtx(t)
	if _, err := src.Fetch(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	is := src.(*imapSource)
	_ = is.c.Close() // what a server restart or network drop looks like
	msgs, err := src.Fetch(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Errorf("Fetch after reconnect = %v, want 3 messages", ids(msgs))
	}

	small := openDovecot(t, s, "imaps", "/INBOX", "", Config{MaxMessageBytes: 40})
	got, err := small.Fetch(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := fixture(t, fixtures[0])[:40]; len(got) != 1 || string(got[0].Raw) != string(want) {
		t.Errorf("truncated Fetch = %q, want the first 40 bytes %q", got, want)
	}
}

// TestWrongPassword: a refused login is an error without the password.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t)
	for _, scheme := range []string{"imap", "imaps", "pop3", "pop3s"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			u := strings.Replace(s.URL(scheme, "", ""), ":"+s.Password+"@", ":Wrong-"+s.Password+"@", 1)
			src, err := Open(u, Config{TLSConfig: &tls.Config{RootCAs: s.RootCAs}, Log: testLog(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			_, err = src.Fetch(testCtx(t), 10, nil)
			if err == nil {
				t.Fatal("Fetch with a wrong password succeeded")
			}
			if strings.Contains(err.Error(), s.Password) {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}
}

// TestUntrustedCertificate: every TLS mode fails against a certificate
// the pool does not trust, and the error carries no password.
func TestUntrustedCertificate(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t)
	for _, scheme := range []string{"imap", "imaps", "pop3", "pop3s"} {
		t.Run(scheme, func(t *testing.T) {
			src := openDovecot(t, s, scheme, "", "", Config{TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}})
			_, err := src.Fetch(testCtx(t), 10, nil)
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Fatalf("Fetch error = %v, want a certificate verification error", err)
			}
			if strings.Contains(err.Error(), s.Password) {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}
}
