package api

import (
	"context"
	"sync"
	"time"

	"github.com/mailgate/mailgate/store"
)

// Revocations broadcasts key revocations and domain changes between API
// replicas and to the workers (queue.Revocations). With it, keys and
// domains are cached for a moment; without it, every request reads them
// from the database.
type Revocations interface {
	Publish(ctx context.Context, payload string) error
	Subscribe(ctx context.Context, subscribed func(), fn func(payload string)) error
}

// keyCache keeps recently used keys for KeyCacheTTL so that the send path
// does not read its key on every request. A revocation through any replica
// (API or CLI) evicts the key everywhere at once through Revocations; the
// TTL bounds how long a change made behind mailgate's back takes. A
// lookup that began before an eviction is not cached.
type keyCache struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	// epoch counts evictions; a lookup that began before one is not
	// cached, since it may have read what the eviction was for.
	epoch uint64
	keys  map[string]cachedKey
}

type cachedKey struct {
	key     store.APIKey
	expires time.Time
}

func newKeyCache(ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, now: now, keys: map[string]cachedKey{}}
}

// get returns the cached key, if any, and the eviction epoch to pass to
// put after a lookup on a miss.
func (kc *keyCache) get(id string) (store.APIKey, bool, uint64) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	c, ok := kc.keys[id]
	if !ok || !kc.now().Before(c.expires) {
		return store.APIKey{}, false, kc.epoch
	}
	return c.key, true, kc.epoch
}

// put caches k, read by a lookup that began at epoch, unless an eviction
// happened since (the lookup may have read a key revoked meanwhile).
func (kc *keyCache) put(k store.APIKey, epoch uint64) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kc.epoch != epoch {
		return
	}
	if len(kc.keys) > 10000 {
		clear(kc.keys)
	}
	kc.keys[k.ID] = cachedKey{key: k, expires: kc.now().Add(kc.ttl)}
}

func (kc *keyCache) evict(id string) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.epoch++
	delete(kc.keys, id)
}

func (kc *keyCache) clear() {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.epoch++
	clear(kc.keys)
}

// lookupKey reads a key through the cache when revocations are broadcast.
func (s *Server) lookupKey(ctx context.Context, id string) (store.APIKey, error) {
	var epoch uint64
	if s.keys != nil {
		k, ok, e := s.keys.get(id)
		if ok {
			return k, nil
		}
		epoch = e
	}
	k, err := s.deps.Store.KeyByID(ctx, id)
	if err == nil && s.keys != nil && k.RevokedAt == nil {
		s.keys.put(k, epoch)
	}
	return k, err
}

// keyRevoked evicts a key here and tells the other replicas.
func (s *Server) keyRevoked(ctx context.Context, id string) {
	if s.keys == nil {
		return
	}
	s.keys.evict(id)
	if err := s.deps.Revocations.Publish(ctx, id); err != nil {
		s.deps.Log.Warn("broadcast key revocation; other replicas drop it within the cache TTL", "err", err)
	}
}

// Listen keeps the key and domain caches in step with key revocations
// and domain changes from other replicas until ctx ends. Run it beside
// Run; ready is closed when it first listens. Each subscription (the
// first, and each after a reconnect to Redis) empties both caches, since
// broadcasts made while none was active are lost.
func (s *Server) Listen(ctx context.Context, ready chan<- struct{}) error {
	if s.keys == nil {
		close(ready)
		<-ctx.Done()
		return nil
	}
	first := true
	return s.deps.Revocations.Subscribe(ctx, func() {
		s.forget()
		if first {
			first = false
			close(ready)
		}
	}, s.revoked)
}
