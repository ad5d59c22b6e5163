package inbound

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/verp"
)

// inboundTestRedisDB is the Redis database this package's tests use; each
// test's lock keys carry a random prefix, so nothing is flushed.
const inboundTestRedisDB = 14

// returnPathDomain is the VERP domain of the tests.
const returnPathDomain = "bounces.mailgate.example"

// clock is the injected clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// env is a real store on one engine, a real Redis and a VERP codec.
type env struct {
	t       *testing.T
	store   *store.Store
	rdb     redis.UniversalClient
	codec   *verp.Codec
	clock   *clock
	metrics *Metrics
	prefix  string
}

// engines runs fn once per store engine on a fresh, migrated database.
func engines(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Parallel()
	urls := testsvc.DatabaseURLs(t)
	names := make([]string, 0, len(urls))
	for name := range urls {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) { fn(t, newEnv(t, urls[name])) })
	}
}

func newEnv(t *testing.T, url string) *env {
	t.Helper()
	return newEnvRedis(t, url, testsvc.RedisURLDB(t, inboundTestRedisDB))
}

// newEnvRedis is newEnv on the Redis named by redisURL (a Sentinel setup
// or a Cluster of the test's own).
func newEnvRedis(t *testing.T, url, redisURL string) *env {
	t.Helper()
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
	st, err := store.Open(ctx, store.Config{URL: url, Now: clk.Now, MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	rdb, err := queue.OpenRedis(redisURL)
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return &env{t: t, store: st, rdb: rdb, codec: verp.New(kr, returnPathDomain), clock: clk,
		metrics: NewMetrics(), prefix: "mailgate-test:inbound:" + uuid.NewString() + ":"}
}

// poller builds a poller over the sources with fast lock timings.
func (e *env) poller(cfg Config, sources ...Source) *Poller {
	e.t.Helper()
	cfg.Now = e.clock.Now
	cfg.LockPrefix = e.prefix
	if cfg.LockTTL == 0 {
		cfg.LockTTL = 3 * time.Second
	}
	if cfg.LockRetry == 0 {
		cfg.LockRetry = 10 * time.Millisecond
	}
	p, err := New(cfg, Deps{Store: e.store, Redis: e.rdb, VERP: e.codec, Sources: sources, Metrics: e.metrics})
	if err != nil {
		e.t.Fatalf("inbound.New: %v", err)
	}
	return p
}

// sentMessage stores a message from shop.example to rcpts, as the API
// does, and records it sent to each, as the worker does. It returns its id.
func (e *env) sentMessage(rcpts ...string) string {
	e.t.Helper()
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()
	m := store.NewMessage{ID: id, ProjectID: store.DefaultProjectID, KeyID: "k1",
		From: "Shop <orders@shop.example>", FromDomain: "shop.example", Subject: "Your order #1234",
		Tags: []string{}, Metadata: map[string]string{}, Payload: store.Payload{Request: []byte(`{}`)}, CreatedAt: e.clock.Now()}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, store.NewRecipient{Email: r, Kind: store.KindTo, Status: store.StatusQueued})
	}
	if _, err := e.store.CreateMessages(ctx, []store.NewMessage{m}, nil); err != nil {
		e.t.Fatalf("create message: %v", err)
	}
	_, start, err := e.store.StartDelivery(ctx, id, time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatalf("begin attempt: %v", err)
	}
	var outs []store.Outcome
	for _, r := range start.Send {
		outs = append(outs, store.Outcome{Position: r.Position, Email: r.Email, Status: store.StatusSent,
			SMTPCode: 250, Event: store.EventSent})
	}
	if err := e.store.RecordOutcomes(ctx, id, outs, time.Time{}); err != nil {
		e.t.Fatalf("record outcomes: %v", err)
	}
	return id
}

// fixture reads testdata/NAME.eml with {{ID}}, {{RCPT}} and {{VERP}} (the
// bounce address of recipient pos of message id) filled in.
func (e *env) fixture(name, id string, pos int, rcpt string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".eml"))
	if err != nil {
		e.t.Fatalf("read fixture: %v", err)
	}
	addr, err := e.codec.Address(id, pos)
	if err != nil {
		e.t.Fatalf("verp address: %v", err)
	}
	return []byte(strings.NewReplacer("{{ID}}", id, "{{RCPT}}", rcpt, "{{VERP}}", addr).Replace(string(b)))
}

// recipientStatus is the status of recipient pos of message id.
func (e *env) recipientStatus(id string, pos int) string {
	e.t.Helper()
	m, err := e.store.GetMessage(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		e.t.Fatalf("get message: %v", err)
	}
	return m.Recipients[pos].Status
}

// events lists message id's events after message.queued and
// message.sent, as "type recipient data".
func (e *env) events(id string) []string {
	e.t.Helper()
	evs, err := e.store.MessageEvents(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		e.t.Fatalf("events: %v", err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Type != store.EventQueued && ev.Type != store.EventSent {
			out = append(out, ev.Type+" "+ev.Recipient+" "+string(ev.Data))
		}
	}
	return out
}

// suppression is the reason the address is suppressed for, or "".
func (e *env) suppression(email string) string {
	e.t.Helper()
	sp, err := e.store.GetSuppression(context.Background(), store.DefaultProjectID, email)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatalf("get suppression: %v", err)
	}
	return sp.Reason
}

// fakeSource is an in-memory mailbox.
type fakeSource struct {
	name string
	mu   sync.Mutex
	msgs []Message
	done map[string]bool
	// failDone makes Done fail, as a crash after the commit would.
	failDone bool
	fetches  int
	// fetched receives after each Fetch; doneCh after each Done.
	fetched chan struct{}
	doneCh  chan struct{}
}

func newFakeSource(name string, msgs ...Message) *fakeSource {
	return &fakeSource{name: name, msgs: msgs, done: map[string]bool{},
		fetched: make(chan struct{}, 100), doneCh: make(chan struct{}, 100)}
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Fetch(_ context.Context, max int, skip func(id string) bool) ([]Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	defer func() { notify(f.fetched) }()
	var out []Message
	for _, m := range f.msgs {
		if len(out) == max {
			break
		}
		if !f.done[m.ID] && !skip(m.ID) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (f *fakeSource) Done(_ context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failDone {
		return errors.New("connection reset")
	}
	for _, id := range ids {
		f.done[id] = true
	}
	notify(f.doneCh)
	return nil
}

func (f *fakeSource) Wait(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeSource) Close() error { return nil }

func (f *fakeSource) isDone(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done[id]
}

func (f *fakeSource) fetchCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// await waits for a signal on ch, failing the test after 10 s.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// wantSoftBounces checks the address's count of consecutive soft bounces.
func (e *env) wantSoftBounces(email string, want int) {
	e.t.Helper()
	got, err := e.store.SoftBounceCount(context.Background(), store.DefaultProjectID, email)
	if err != nil || got != want {
		e.t.Errorf("soft bounces of %s = %d, %v; want %d", email, got, err, want)
	}
}

// inboundAuthenticated lists, oldest first, whether each inbound row
// matched to message id is authenticated.
func (e *env) inboundAuthenticated(id string) []bool {
	e.t.Helper()
	rows, _, err := e.store.ListInbound(context.Background(), store.InboundFilter{ProjectID: store.DefaultProjectID,
		Page: store.Page{Limit: 100}})
	if err != nil {
		e.t.Fatalf("list inbound: %v", err)
	}
	var out []bool
	for _, r := range slices.Backward(rows) {
		if r.MessageID == id {
			out = append(out, r.Authenticated)
		}
	}
	return out
}
