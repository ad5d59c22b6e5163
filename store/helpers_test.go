package store

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// engines runs fn once per database engine, each on a fresh, migrated
// database with its own clock. The calling test runs in parallel with
// other such tests.
func engines(t *testing.T, fn func(t *testing.T, s *Store, clk *clock)) {
	t.Helper()
	t.Parallel()
	urls := testsvc.DatabaseURLs(t)
	names := make([]string, 0, len(urls))
	for name := range urls {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			s := openStore(t, urls[name], clk)
			if err := s.MigrateUp(context.Background()); err != nil {
				t.Fatalf("migrate up: %v", err)
			}
			fn(t, s, clk)
		})
	}
}

func openStore(t *testing.T, url string, clk *clock) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{URL: url, Now: clk.Now})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newMsg is a message of the default project with the given recipients,
// each queued.
func newMsg(id string, created time.Time, emails ...string) NewMessage {
	m := NewMessage{
		ID: id, ProjectID: DefaultProjectID, KeyID: "k1",
		From: "Shop <orders@shop.example>", FromDomain: "shop.example", Subject: "Order " + id,
		Tags: []string{"order"}, Metadata: map[string]string{"order_id": id},
		Payload: Payload{Request: []byte(`{"subject":"x"}`), Text: "hello " + id}, CreatedAt: created,
	}
	for _, e := range emails {
		m.Recipients = append(m.Recipients, NewRecipient{Email: e, Kind: KindTo, Status: StatusQueued})
	}
	return m
}

// claimed claims key for the API key k1 (hash "h") and returns what
// finishes that claim, recording code and body.
func claimed(t testing.TB, s *Store, key string, code int, body string) *IdempotencyResult {
	t.Helper()
	st, err := s.ClaimIdempotencyKey(context.Background(), "k1", key, []byte("h"), time.Minute)
	if err != nil || !st.Fresh {
		t.Fatalf("claim %s = %+v, %v; want fresh", key, st, err)
	}
	return &IdempotencyResult{KeyID: "k1", Key: key, Token: st.Token, Respond: fixed(code, body)}
}

// fixed is a Respond that records code and body whatever was created.
func fixed(code int, body string) func([]Created) (int, []byte, error) {
	return func([]Created) (int, []byte, error) { return code, []byte(body), nil }
}
