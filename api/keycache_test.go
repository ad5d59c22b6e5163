package api

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// TestCachedKeyRevokedOnEveryReplica: with key caching on, a key revoked
// through one replica is refused by another on its very next request.
func TestCachedKeyRevokedOnEveryReplica(t *testing.T) {
	a := newEnv(t, store.DialectSQLite)
	cacheWithBroadcast(a)
	replicaB := startReplica(t, a, Config{AllowedSenderDomains: []string{"shop.example"}})

	token := a.key(store.DefaultProjectID, apikey.ScopeRead)
	id, _, _ := apikey.Parse(token)
	for _, e := range []*testEnv{a, replicaB} { // both replicas cache the key
		wantCode(t, e.get(t, "/v1/messages", token), http.StatusOK)
	}
	wantCode(t, a.do(t, request{Method: http.MethodDelete, Path: "/v1/keys/" + id, Token: a.admin}), http.StatusNoContent)
	wantCode(t, a.get(t, "/v1/messages", token), http.StatusUnauthorized)
	deadline := time.Now().Add(5 * time.Second)
	for replicaB.get(t, "/v1/messages", token).Code != http.StatusUnauthorized { // the broadcast is asynchronous
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts a key revoked through replica A")
		}
		runtime.Gosched()
	}
}

// cacheWithBroadcast turns e's key and domain caches on (one minute, so
// that only a broadcast or a local eviction can drop an entry) with
// revocations broadcast over e's Redis.
func cacheWithBroadcast(e *testEnv) {
	e.srv.deps.Revocations = queue.NewRevocations(e.rdb)
	e.srv.keys = newKeyCache(time.Minute, time.Now)
	e.srv.domains = newDomainCache(time.Minute, time.Now)
}

// startReplica is a second API server on a's database, queue and
// broadcast channel, caching for a minute and listening for broadcasts
// until the test ends.
func startReplica(t *testing.T, a *testEnv, cfg Config) *testEnv {
	t.Helper()
	cfg.KeyCacheTTL = time.Minute
	b, err := New(cfg, Deps{Store: a.store, Queue: a.queue, Revocations: queue.NewRevocations(a.rdb)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan struct{})
	go func() { _ = b.Listen(ctx, ready) }()
	<-ready
	return &testEnv{t: t, handler: b.Handler()}
}

// TestCachesDroppedOnResubscribe: a key revoked while a replica's
// subscription was down (its Redis restarted) is refused once the
// replica has subscribed again, though the key is cached for a minute:
// each subscription empties the caches.
func TestCachesDroppedOnResubscribe(t *testing.T) {
	a := newEnv(t, store.DialectSQLite)
	redisServer := testsvc.StartRedis(t)
	rdb, err := queue.OpenRedis(redisServer.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	b, err := New(Config{KeyCacheTTL: time.Minute}, Deps{Store: a.store, Queue: a.queue, Revocations: queue.NewRevocations(rdb)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan struct{})
	go func() { _ = b.Listen(ctx, ready) }()
	<-ready
	replicaB := &testEnv{t: t, handler: b.Handler()}

	token := a.key(store.DefaultProjectID, apikey.ScopeRead)
	id, _, _ := apikey.Parse(token)
	wantCode(t, replicaB.get(t, "/v1/messages", token), http.StatusOK)
	if err := a.store.RevokeKey(context.Background(), id); err != nil { // no broadcast
		t.Fatal(err)
	}
	wantCode(t, replicaB.get(t, "/v1/messages", token), http.StatusOK) // cached

	redisServer.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for replicaB.get(t, "/v1/messages", token).Code != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts the revoked key after resubscribing")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
