package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// observedChanges is a worker's subscription to the domain changes that
// reports each payload once the worker has applied it.
type observedChanges struct {
	inner   worker.Changes
	applied chan string
}

func (o *observedChanges) Subscribe(ctx context.Context, subscribed func(), fn func(string)) error {
	return o.inner.Subscribe(ctx, subscribed, func(payload string) {
		fn(payload)
		o.applied <- payload
	})
}

// keysWorker is one worker's key source, caching for an hour, with its
// own Redis connection and subscription.
type keysWorker struct {
	keys    *worker.StoreKeys
	changes *observedChanges
}

func startKeysWorker(t *testing.T, ctx context.Context, st *store.Store, kr *keyring.Keyring, redisURL string) *keysWorker {
	t.Helper()
	rdb := openTestRedis(t, redisURL)
	w := &keysWorker{keys: worker.NewStoreKeys(st, kr, time.Hour, nil),
		changes: &observedChanges{inner: queue.NewRevocations(rdb), applied: make(chan string, 64)}}
	subscribed := make(chan struct{}, 4)
	go func() { _ = w.keys.Listen(ctx, w.changes, func() { subscribed <- struct{}{} }) }()
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not subscribe to domain changes within 30 s")
	}
	return w
}

func openTestRedis(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	rdb, err := queue.OpenRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// awaitChanges waits until the worker has applied n broadcasts.
func (w *keysWorker) awaitChanges(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case p := <-w.changes.applied:
			if _, _, ok := queue.ParseDomainChange(p); !ok {
				t.Fatalf("broadcast %q is not a domain change", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the worker received no domain change within 10 s")
		}
	}
}

// selectors are the worker's signing selectors for shop.example, sorted;
// nil when it would send unsigned.
func (w *keysWorker) selectors(t *testing.T) []string {
	t.Helper()
	sk, err := w.keys.SigningKeys(context.Background(), store.DefaultProjectID, "shop.example")
	if err != nil {
		t.Fatalf("signing keys: %v", err)
	}
	keys := sk.Keys
	var out []string
	for _, k := range keys {
		out = append(out, k.Selector)
	}
	slices.Sort(out)
	return out
}

// TestDomainChangesReachEveryWorker: two workers, each caching keys for
// an hour behind its own subscription, and an API server on the same
// database and Redis. A domain registered is signed by both on their next
// message (a "not registered" answer is never cached); after a rotation,
// a retirement and a deletion through the API, each worker's very next
// message uses the new key set, or none, as soon as the broadcast has
// reached it: with an hour's TTL only the broadcast explains it.
func TestDomainChangesReachEveryWorker(t *testing.T) {
	for _, engine := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			url := testsvc.SQLiteURL(t)
			if engine == store.DialectPostgres {
				url = testsvc.PostgresURL(t)
			}
			st, err := store.Open(ctx, store.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.MigrateUp(ctx); err != nil {
				t.Fatal(err)
			}
			redisURL := testsvc.StartRedis(t).URL()
			kr, err := keyring.Generated()
			if err != nil {
				t.Fatal(err)
			}
			domains := newDomainsAPI(t, st, kr, openTestRedis(t, redisURL))
			workers := []*keysWorker{startKeysWorker(t, ctx, st, kr, redisURL), startKeysWorker(t, ctx, st, kr, redisURL)}
			second := workers[1]

			for _, w := range workers {
				if got := w.selectors(t); got != nil {
					t.Fatalf("before registration the worker signs with %v", got)
				}
			}
			created := domains.do(http.MethodPost, "/v1/domains", `{"name":"shop.example"}`, http.StatusCreated)
			for _, w := range workers { // at once, broadcast or not
				if got := w.selectors(t); !slices.Equal(got, created) {
					t.Errorf("just after registration the worker signs with %v, want %v", got, created)
				}
				w.awaitChanges(t, 1)
				w.selectors(t) // cached again after the registration's eviction
			}

			rotated := domains.do(http.MethodPost, "/v1/domains/shop.example/dkim/rotate", "", http.StatusOK)
			if len(rotated) != 4 {
				t.Fatalf("after the rotation %d active keys, want 4", len(rotated))
			}
			second.awaitChanges(t, 1)
			if got := second.selectors(t); !slices.Equal(got, rotated) {
				t.Errorf("after the rotation the second worker signs with %v, want %v", got, rotated)
			}

			for _, sel := range created {
				domains.do(http.MethodDelete, "/v1/domains/shop.example/dkim/"+sel, "", http.StatusNoContent)
			}
			second.awaitChanges(t, len(created))
			if got, want := second.selectors(t), slices.DeleteFunc(slices.Clone(rotated), func(s string) bool {
				return slices.Contains(created, s)
			}); !slices.Equal(got, want) {
				t.Errorf("after retiring the first keys the second worker signs with %v, want %v", got, want)
			}

			domains.do(http.MethodDelete, "/v1/domains/shop.example", "", http.StatusNoContent)
			second.awaitChanges(t, 1)
			if got := second.selectors(t); got != nil {
				t.Errorf("after the deletion the second worker signs with %v, want none", got)
			}
		})
	}
}

// domainsAPI calls an API server's domain routes with a domains key.
type domainsAPI struct {
	t       *testing.T
	handler http.Handler
	token   string
}

func newDomainsAPI(t *testing.T, st *store.Store, kr *keyring.Keyring, rdb redis.UniversalClient) *domainsAPI {
	t.Helper()
	srv, err := api.New(api.Config{KeyCacheTTL: time.Hour}, api.Deps{Store: st, Keyring: kr,
		Queue: queue.New(queue.Config{}, rdb), Limiter: ratelimit.New(ratelimit.Config{}, rdb),
		Revocations: queue.NewRevocations(rdb)})
	if err != nil {
		t.Fatal(err)
	}
	k, token, err := api.NewKey(store.DefaultProjectID, "domains", []string{"domains"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return &domainsAPI{t: t, handler: srv.Handler(), token: token}
}

// do makes one request, wants the status, and returns the active DKIM
// selectors of the domain it answers, sorted (none for 204).
func (a *domainsAPI) do(method, path, body string, want int) []string {
	a.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	if rec.Code != want {
		a.t.Fatalf("%s %s = %d, want %d: %s", method, path, rec.Code, want, rec.Body.String())
	}
	if rec.Code == http.StatusNoContent {
		return nil
	}
	var d struct {
		DKIM []struct {
			Selector  string  `json:"selector"`
			RetiredAt *string `json:"retired_at"`
		} `json:"dkim"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		a.t.Fatal(err)
	}
	var out []string
	for _, k := range d.DKIM {
		if k.RetiredAt == nil {
			out = append(out, k.Selector)
		}
	}
	slices.Sort(out)
	return out
}
