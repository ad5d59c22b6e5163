package api

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// apiTestRedisDB is the Redis database this package's tests own; each
// harness flushes it, so the tests of this package do not run in parallel.
const apiTestRedisDB = 9

// fakeClock is the injected clock of a test server. It starts at the real
// time (whole seconds), so that asynq, which compares ProcessAt with the
// real clock, schedules what the API schedules.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
}

// Now is the current fake time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testEnv is one real API server on one store engine, a real Redis and a
// real queue client, with keys in the default project.
type testEnv struct {
	t       *testing.T
	engine  string
	dbURL   string
	store   *store.Store
	rdb     redis.UniversalClient
	queue   *queue.Client
	clock   *fakeClock
	srv     *Server
	handler http.Handler
	reg     *prometheus.Registry
	// admin holds the admin scope; sender holds messages:send,
	// messages:read and suppressions, both in the default project.
	admin, sender string
}

// envOption changes the server's Config or Deps before api.New.
type envOption func(*Config, *Deps)

// engines runs fn once per store engine.
func engines(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, engine := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(engine, func(t *testing.T) { fn(t, engine) })
	}
}

// newEnv builds a server on a fresh, migrated database of the engine.
func newEnv(t *testing.T, engine string, opts ...envOption) *testEnv {
	t.Helper()
	return newEnvStore(t, engine, nil, opts...)
}

// newEnvWrapped is newEnv with the store's database connectors wrapped by
// wrap (store.Config.WrapConnector), to inject faults.
func newEnvWrapped(t *testing.T, engine string, wrap func(driver.Connector) driver.Connector, opts ...envOption) *testEnv {
	t.Helper()
	return newEnvStore(t, engine, func(c *store.Config) { c.WrapConnector = wrap }, opts...)
}

// newEnvStore is newEnv with the store's Config changed by storeCfg, when
// set, before the store opens (e.g. a URL through a proxy, WrapConnector).
func newEnvStore(t *testing.T, engine string, storeCfg func(*store.Config), opts ...envOption) *testEnv {
	t.Helper()
	ctx := context.Background()
	e := &testEnv{t: t, engine: engine, clock: newFakeClock(), reg: prometheus.NewRegistry()}
	e.dbURL = testsvc.SQLiteURL(t)
	if engine == store.DialectPostgres {
		e.dbURL = testsvc.PostgresURL(t)
	}
	scfg := store.Config{URL: e.dbURL, Now: e.clock.Now, MaxOpenConns: 8}
	if storeCfg != nil {
		storeCfg(&scfg)
	}
	st, err := store.Open(ctx, scfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e.store = st
	e.openRedis()
	cfg := Config{AllowedSenderDomains: []string{"shop.example"}, Now: e.clock.Now}
	deps := Deps{Store: st, Queue: e.queue, Limiter: ratelimit.New(ratelimit.Config{}, e.rdb),
		Registry: e.reg, Gatherer: e.reg,
		Ready: []ReadyCheck{{Name: "redis", Check: func(ctx context.Context) error { return e.rdb.Ping(ctx).Err() }}}}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.srv, e.handler = srv, srv.Handler()
	e.admin = e.key(store.DefaultProjectID, apikey.ScopeAdmin)
	e.sender = e.key(store.DefaultProjectID, apikey.ScopeSend, apikey.ScopeRead, apikey.ScopeSuppressions)
	return e
}

func (e *testEnv) openRedis() {
	t := e.t
	lockRedisDB(t)
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(t, apiTestRedisDB))
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	e.rdb, e.queue = rdb, queue.New(queue.Config{}, rdb)
	t.Cleanup(func() { _ = e.queue.Close(); _ = rdb.Close() })
}

// lockRedisDB holds an exclusive lock on this package's Redis database
// until the test ends: two `go test ./api/` processes on one machine would
// otherwise flush each other's tasks.
func lockRedisDB(t *testing.T) {
	t.Helper()
	name := filepath.Join(os.TempDir(), "mailgate-api-test-redis-"+strconv.Itoa(apiTestRedisDB)+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open lock file: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", name, err)
	}
	t.Cleanup(func() { _ = f.Close() }) // closing releases the lock
}

// key creates a key in the store for the project and returns its token.
func (e *testEnv) key(projectID string, scopes ...string) string {
	e.t.Helper()
	k, tok, err := NewKey(projectID, "test "+strings.Join(scopes, ","), scopes, e.clock.Now())
	if err != nil {
		e.t.Fatalf("new key: %v", err)
	}
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatalf("create key: %v", err)
	}
	return tok
}

// project creates a project in the store and returns its id.
func (e *testEnv) project(name string) string {
	e.t.Helper()
	p, err := e.store.CreateProject(context.Background(), name)
	if err != nil {
		e.t.Fatalf("create project %s: %v", name, err)
	}
	return p.ID
}

// response is a recorded answer.
type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

// decode unmarshals the body into v, failing the test when it cannot.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", truncate(r.Body, 500), err)
	}
}

// problem is the body as a Problem; it checks the media type.
func (r response) problem(t testing.TB) Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p Problem
	r.decode(t, &p)
	return p
}

// fields lists the problem's errors[].field.
func (p Problem) fields() []string {
	out := make([]string, len(p.Errors))
	for i, fe := range p.Errors {
		out[i] = fe.Field
	}
	return out
}

// hasField reports whether errors[] names field.
func (p Problem) hasField(field string) bool {
	for _, fe := range p.Errors {
		if fe.Field == field {
			return true
		}
	}
	return false
}

// request is one call; Body is raw bytes, a string or a value to marshal.
type request struct {
	Method, Path, Token string
	Body                any
	Header              map[string]string
}

// do serves req through the handler and checks the answer against
// openapi.yaml.
func (e *testEnv) do(t testing.TB, rq request) response {
	t.Helper()
	body := requestBody(t, rq.Body)
	req := httptest.NewRequest(rq.Method, rq.Path, bytes.NewReader(body))
	if rq.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.Token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.Token)
	}
	for k, v := range rq.Header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	res := response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	checkReq := httptest.NewRequest(rq.Method, rq.Path, nil)
	checkReq.Header = req.Header.Clone()
	checkResponse(t, checkReq, res.Code, res.Header, res.Body)
	return res
}

func requestBody(t testing.TB, b any) []byte {
	t.Helper()
	switch v := b.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatalf("encode request: %v", err)
	}
	return out
}

// get is a GET with token.
func (e *testEnv) get(t testing.TB, path, token string) response {
	t.Helper()
	return e.do(t, request{Method: http.MethodGet, Path: path, Token: token})
}

// post is a POST of body with token.
func (e *testEnv) post(t testing.TB, path, token string, body any) response {
	t.Helper()
	return e.do(t, request{Method: http.MethodPost, Path: path, Token: token, Body: body})
}

// wantCode fails t unless r has the status code.
func wantCode(t testing.TB, r response, code int) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("status %d, want %d; body %s", r.Code, code, truncate(r.Body, 1500))
	}
}

// wantProblem checks the status, the problem type slug and, when given,
// that errors[] names each field.
func wantProblem(t testing.TB, r response, code int, slug string, fields ...string) Problem {
	t.Helper()
	wantCode(t, r, code)
	p := r.problem(t)
	if p.Type != problemType+slug {
		t.Errorf("problem type %q, want %q", p.Type, problemType+slug)
	}
	if p.Status != code {
		t.Errorf("problem status %d, want %d", p.Status, code)
	}
	for _, f := range fields {
		if !p.hasField(f) {
			t.Errorf("errors %v do not name %q", p.fields(), f)
		}
	}
	return p
}

// message is a valid request body that tests change.
func message() map[string]any {
	return map[string]any{
		"from":    "Shop <orders@shop.example>",
		"to":      []string{"ann@example.org"},
		"subject": "Your order",
		"text":    "Hello",
	}
}

// with returns a copy of m with the fields set.
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// fixture reads a request body from testdata/requests.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "requests", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// acceptedBody is the 202 answer.
type acceptedBody struct {
	ID         string          `json:"id"`
	Status     string          `json:"status"`
	Recipients []wireRecipient `json:"recipients"`
	Warnings   []string        `json:"warnings"`
}

// send posts body and wants 202.
func (e *testEnv) send(t testing.TB, token string, body any) acceptedBody {
	t.Helper()
	r := e.post(t, "/v1/messages", token, body)
	wantCode(t, r, http.StatusAccepted)
	var a acceptedBody
	r.decode(t, &a)
	return a
}

// getMessage reads a message through the API.
func (e *testEnv) getMessage(t testing.TB, token, id string) wireMessage {
	t.Helper()
	r := e.get(t, "/v1/messages/"+id, token)
	wantCode(t, r, http.StatusOK)
	var m wireMessage
	r.decode(t, &m)
	return m
}

// inspector looks at the asynq queues.
func (e *testEnv) inspector() *asynq.Inspector {
	return asynq.NewInspectorFromRedisClient(e.rdb)
}

// task is the send task of a message, or nil when there is none.
func (e *testEnv) task(t testing.TB, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := e.inspector().GetTaskInfo(queue.QueueSend, id)
	if err != nil {
		return nil
	}
	return info
}

// taskCount counts the send tasks in every state that waits to run.
func (e *testEnv) taskCount(t testing.TB) int {
	t.Helper()
	info, err := e.inspector().GetQueueInfo(queue.QueueSend)
	if err != nil {
		return 0 // the queue does not exist yet: no task was ever enqueued
	}
	return info.Pending + info.Scheduled + info.Retry + info.Active
}

// sqlDB opens the test database directly, for what the API cannot show.
func (e *testEnv) sqlDB() *sql.DB {
	e.t.Helper()
	driver, dsn := "pgx", e.dbURL
	if e.engine == store.DialectSQLite {
		driver = "sqlite"
		dsn = "file:" + strings.TrimPrefix(e.dbURL, "sqlite:") + "?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		e.t.Fatalf("open database: %v", err)
	}
	e.t.Cleanup(func() { _ = db.Close() })
	return db
}

// count runs a COUNT(*) query.
func count(t testing.TB, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// The wire shapes the tests decode, written from openapi.yaml rather than
// borrowed from the handlers' types, so that a change of the JSON breaks
// a test.

type wireRecipient struct {
	Email        string  `json:"email"`
	Kind         string  `json:"kind,omitempty"`
	Status       string  `json:"status"`
	SMTPCode     *int    `json:"smtp_code,omitempty"`
	SMTPResponse *string `json:"smtp_response,omitempty"`
	UpdatedAt    string  `json:"updated_at,omitempty"`
}

type wireEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	MessageID string          `json:"message_id"`
	Recipient string          `json:"recipient"`
	Domain    string          `json:"domain"`
	Sequence  int64           `json:"sequence"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

type wireMessage struct {
	ID                 string            `json:"id"`
	Status             string            `json:"status"`
	From               string            `json:"from"`
	Subject            string            `json:"subject"`
	Tags               []string          `json:"tags"`
	Metadata           map[string]string `json:"metadata"`
	SendAt             *string           `json:"send_at"`
	PossiblyDuplicated bool              `json:"possibly_duplicated"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
	Recipients         []wireRecipient   `json:"recipients"`
	Events             []wireEvent       `json:"events"`
}

type wireList[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

type wireSuppression struct {
	Email     string `json:"email"`
	Reason    string `json:"reason"`
	Note      string `json:"note"`
	CreatedAt string `json:"created_at"`
}

type wireProject struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type wireKey struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Project   string   `json:"project"`
	Scopes    []string `json:"scopes"`
	RevokedAt *string  `json:"revoked_at"`
	Token     string   `json:"token"`
}

type wireHealth struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}
