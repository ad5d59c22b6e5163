package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/console"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// consoleTestRedisDB is the Redis database this package's tests own (the
// in-process server's and the browser tests' gateways); each test flushes
// it under a lock file, so the tests of this package do not run in
// parallel.
const consoleTestRedisDB = 7

// fakeClock is the console's and the store's injected clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is an in-process API server with the console, on SQLite and the
// package's Redis database, behind a loopback httptest server.
type env struct {
	t     *testing.T
	store *store.Store
	rdb   redis.UniversalClient
	clock *fakeClock
	srv   *api.Server
	url   string
}

// newEnv starts the API with the console configured by cfg (its clock
// is the env's).
func newEnv(t *testing.T, cfg console.Config) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: &fakeClock{now: time.Now().UTC().Truncate(time.Second)}}
	st, err := store.Open(ctx, store.Config{URL: testsvc.SQLiteURL(t), Now: e.clock.Now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e.store, e.rdb = st, testRedis(t)
	q := queue.New(queue.Config{}, e.rdb)
	t.Cleanup(func() { _ = q.Close() })
	lim := ratelimit.New(ratelimit.Config{}, e.rdb)
	cfg.Now = e.clock.Now
	e.srv, err = api.New(api.Config{Now: e.clock.Now, AllowedSenderDomains: []string{"shop.example"}},
		api.Deps{Store: st, Queue: q, Limiter: lim,
			Console: func(s *api.Server) (http.Handler, error) {
				return console.New(cfg, console.Deps{Store: st, Ops: s, Limiter: lim,
					BuildMIME: func(m store.Message, p store.Payload) ([]byte, error) {
						return worker.RebuildMIME(m, p, m.CreatedAt)
					}})
			}})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	ts := httptest.NewServer(e.srv.Handler())
	t.Cleanup(ts.Close)
	e.url = ts.URL
	return e
}

// testRedis flushes and opens the package's Redis database, holding a
// lock file until the test ends (two `go test ./console/` at once would
// flush each other).
func testRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	name := filepath.Join(os.TempDir(), "mailgate-console-test-redis-"+strconv.Itoa(consoleTestRedisDB)+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open lock file: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", name, err)
	}
	t.Cleanup(func() { _ = f.Close() })
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(t, consoleTestRedisDB))
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	return rdb
}

// key creates a key of the default project with scopes: its record and
// token.
func (e *env) key(scopes ...string) (store.APIKey, string) {
	e.t.Helper()
	return e.projectKey(store.DefaultProjectID, scopes...)
}

func (e *env) projectKey(project string, scopes ...string) (store.APIKey, string) {
	e.t.Helper()
	k, token, err := api.NewKey(project, "console-test", scopes, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateKey(context.Background(), k); err != nil {
		e.t.Fatal(err)
	}
	return k, token
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, acting as a same-origin browser (Sec-Fetch-Site, Origin).
type browser struct {
	t    *testing.T
	e    *env
	http *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, http: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// response is a finished request: status, headers and body.
type response struct {
	code   int
	header http.Header
	body   string
}

// do sends a request with form, or else with the raw body when one is
// given (its Content-Type in header).
func (b *browser) do(method, path string, form url.Values, header map[string]string, raw ...io.Reader) response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else if len(raw) > 0 {
		body = raw[0]
	}
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: string(out)}
}

func (b *browser) get(path string) response { return b.do(http.MethodGet, path, nil, nil) }

// post submits a form with the given fields (no token added).
func (b *browser) post(path string, form url.Values) response {
	return b.do(http.MethodPost, path, form, nil)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf is the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	r := b.get(path)
	m := csrfField.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("GET %s (%d) has no CSRF token:\n%s", path, r.code, r.body)
	}
	return m[1]
}

// signIn signs in with token and checks it worked.
func (b *browser) signIn(token string) {
	b.t.Helper()
	r := b.post("/console/sign-in", url.Values{"csrf_token": {b.csrf("/console")}, "key": {token}})
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/console" {
		b.t.Fatalf("sign-in: %d %s, want 303 to /console\n%s", r.code, r.header.Get("Location"), r.body)
	}
}

// signedIn says whether the session still opens a page that needs one.
func (b *browser) signedIn() bool {
	b.t.Helper()
	r := b.get("/console/messages")
	switch r.code {
	case http.StatusOK:
		return true
	case http.StatusSeeOther:
		return false
	}
	b.t.Fatalf("GET /console/messages: %d\n%s", r.code, r.body)
	return false
}

// allScopes is every scope but admin.
func allScopes() []string {
	return []string{apikey.ScopeSend, apikey.ScopeRead, apikey.ScopeSuppressions, apikey.ScopeDomains,
		apikey.ScopeWebhooks}
}
