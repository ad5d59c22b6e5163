package api

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// TestCachedKeyRevokedOnEveryReplica: with key caching on, a key revoked
// through one replica is refused by another on its very next request.
func TestCachedKeyRevokedOnEveryReplica(t *testing.T) {
	a := newEnv(t, store.DialectSQLite)
	a.srv.deps.Revocations = queue.NewRevocations(a.rdb)
	a.srv.keys = newKeyCache(time.Minute, time.Now)
	b, err := New(Config{AllowedSenderDomains: []string{"shop.example"}, KeyCacheTTL: time.Minute}, Deps{Store: a.store, Queue: a.queue,
		Revocations: queue.NewRevocations(a.rdb)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	go func() { _ = b.Listen(ctx, ready) }()
	<-ready
	replicaB := &testEnv{t: t, handler: b.Handler()}

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
