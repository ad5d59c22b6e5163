package api

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/dbfault"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// wantUnavailable checks a 503 unavailable problem with Retry-After and
// returns its detail.
func wantUnavailable(t *testing.T, r response) string {
	t.Helper()
	p := wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	if got := r.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	return p.Detail
}

// TestDatabaseGoneIs503: while the database cannot be reached (every
// connection cut and new ones reset by a proxy in front of PostgreSQL;
// on SQLite its driver refusing to connect and failing open connections),
// a send and a read are answered 503 with Retry-After, not 500; once it is
// back, the send is accepted.
func TestDatabaseGoneIs503(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		var down func(bool)
		e := newEnvStore(t, engine, func(cfg *store.Config) {
			if engine == store.DialectPostgres {
				proxy := testsvc.StartProxy(t, "127.0.0.1:5432")
				cfg.URL = proxy.ViaURL(t, cfg.URL)
				down = func(d bool) {
					if d {
						proxy.Cut()
					} else {
						proxy.Restore()
					}
				}
				return
			}
			faults := &dbfault.Faults{}
			cfg.WrapConnector = faults.Wrap
			down = faults.SetDown
		})
		id := e.send(t, e.sender, message()).ID
		down(true)
		wantUnavailable(t, e.post(t, "/v1/messages", e.sender, message()))
		wantUnavailable(t, e.get(t, "/v1/messages/"+id, e.sender))
		down(false)
		e.send(t, e.sender, message())
	})
}

// TestRedisGoneIs503: the per-key rate limit is checked in Redis before
// anything is written; Redis refusing connections is a 503, not a 500.
func TestRedisGoneIs503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more: connections are refused
	rdb := redis.NewClient(&redis.Options{Addr: gone, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	e := newEnv(t, store.DialectSQLite, func(cfg *Config, deps *Deps) {
		cfg.RateLimit = 100
		deps.Limiter = ratelimit.New(ratelimit.Config{}, rdb)
	})
	wantUnavailable(t, e.post(t, "/v1/messages", e.sender, message()))
}

// TestCommitAnswerLostIs503ThenReplays: a send commits but the answer is
// lost (the driver reports a broken connection after the database
// committed). The client gets a 503 telling it to retry with the same
// Idempotency-Key; that retry gets the replayed 202 of the committed
// message, and exactly one message exists.
func TestCommitAnswerLostIs503ThenReplays(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		faults := &dbfault.Faults{}
		e := newEnvStore(t, engine, func(cfg *store.Config) { cfg.WrapConnector = faults.Wrap })
		faults.LoseCommit("INSERT INTO messages", io.ErrUnexpectedEOF)
		rq := request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: message(),
			Header: map[string]string{"Idempotency-Key": "order-1234"}}
		detail := wantUnavailable(t, e.do(t, rq))
		if faults.Fired() != 1 {
			t.Fatalf("the commit fault fired %d times, want once", faults.Fired())
		}
		if !strings.Contains(detail, "same Idempotency-Key") {
			t.Errorf("detail %q does not say to retry with the same Idempotency-Key", detail)
		}
		// Both engines report the lost answer as a commit whose outcome is
		// unknown (on PostgreSQL the send is one statement that commits on
		// its own).
		if !strings.Contains(detail, "may have been accepted") {
			t.Errorf("detail %q does not say the request may have been accepted", detail)
		}
		r := e.do(t, rq)
		wantCode(t, r, http.StatusAccepted)
		if r.Header.Get("Idempotent-Replayed") != "true" {
			t.Error("the retry was not a replay")
		}
		var acc acceptedBody
		r.decode(t, &acc)
		if n := count(t, e.sqlDB(), "SELECT count(*) FROM messages"); n != 1 || acc.ID == "" {
			t.Fatalf("%d messages, replayed id %q; want the one committed", n, acc.ID)
		}
		if m := e.getMessage(t, e.sender, acc.ID); m.ID != acc.ID {
			t.Fatalf("replayed id %s reads back as %s", acc.ID, m.ID)
		}
	})
}
