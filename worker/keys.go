package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// Opener opens sealed secrets (keyring.Keyring).
type Opener interface {
	Open(sealed, aad []byte) ([]byte, error)
}

// Changes is the broadcast of domain changes the API makes
// (queue.Revocations: queue.DomainChange payloads among key ids).
type Changes interface {
	Subscribe(ctx context.Context, subscribed func(), fn func(payload string)) error
}

// StoreKeys is the KeySource of a running worker: a domain's active DKIM
// keys from the store, opened with the master key, parsed, and cached so
// that signing does not decrypt and parse on every send.
//
// Only a registered domain's usable keys are cached: "not registered" is
// read from the store on every send (the rare unsigned path of
// MAILGATE_ALLOWED_SENDER_DOMAINS), so a domain registered a moment ago
// is signed on its first message. A registration, rotation, retirement or
// deletion made through the API reaches every worker at once through
// Listen; the TTL bounds how long a change made behind mailgate's back
// (in the database directly) takes.
type StoreKeys struct {
	store  *store.Store
	opener Opener
	ttl    time.Duration
	now    func() time.Time

	mu sync.Mutex
	// epoch counts evictions; a load that began before one is not
	// cached, since it may have read what the eviction was for.
	epoch uint64
	cache map[string]cachedKeys
}

type cachedKeys struct {
	keys    []mta.DKIMKey
	expires time.Time
}

// maxCachedDomains bounds the cache; past it, it starts empty again.
const maxCachedDomains = 10000

// NewStoreKeys returns a KeySource; ttl (default 30 s) bounds how long a
// change made behind mailgate's back takes to reach this worker.
func NewStoreKeys(st *store.Store, opener Opener, ttl time.Duration, now func() time.Time) *StoreKeys {
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &StoreKeys{store: st, opener: opener, ttl: ttl, now: now, cache: map[string]cachedKeys{}}
}

func keysCacheKey(projectID, domain string) string { return projectID + "\x00" + domain }

// SigningKeys implements KeySource: none for a domain the project has not
// registered; for a registered one, every active key, or an error when
// they cannot be had (the store fails, a key does not open with the master
// key or does not parse, no key is active).
func (k *StoreKeys) SigningKeys(ctx context.Context, projectID, domain string) ([]mta.DKIMKey, error) {
	id := keysCacheKey(projectID, domain)
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[id]
	epoch := k.epoch
	k.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.keys, nil
	}
	keys, err := k.load(ctx, projectID, domain)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	k.mu.Lock()
	if k.epoch == epoch {
		if len(k.cache) >= maxCachedDomains {
			clear(k.cache)
		}
		k.cache[id] = cachedKeys{keys: keys, expires: now.Add(k.ttl)}
	}
	k.mu.Unlock()
	return keys, nil
}

// errNoActiveKey: a registered domain without an active key, which the
// store keeps from happening but a change behind its back could cause.
var errNoActiveKey = errors.New("no active DKIM key")

func (k *StoreKeys) load(ctx context.Context, projectID, domain string) ([]mta.DKIMKey, error) {
	rows, registered, err := k.store.SigningKeys(ctx, projectID, domain)
	switch {
	case err != nil:
		return nil, err
	case !registered:
		return nil, nil
	case len(rows) == 0:
		return nil, fmt.Errorf("%s: %w", domain, errNoActiveKey)
	}
	out := make([]mta.DKIMKey, 0, len(rows))
	for _, r := range rows {
		pemKey, err := k.opener.Open(r.PrivateKeySealed, dkimkey.SealAAD(domain, r.Selector))
		if err != nil {
			return nil, fmt.Errorf("open dkim key %s of %s: %w", r.Selector, domain, err)
		}
		signer, err := dkimkey.ParsePrivateKey(pemKey)
		if err != nil {
			return nil, fmt.Errorf("parse dkim key %s of %s: %w", r.Selector, domain, err)
		}
		out = append(out, mta.DKIMKey{Domain: domain, Selector: r.Selector, Signer: mta.AccelerateKey(signer)})
	}
	return out, nil
}

// Evict drops what is cached of a project's domain: it was registered or
// deleted, or its keys changed.
func (k *StoreKeys) Evict(projectID, domain string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epoch++
	delete(k.cache, keysCacheKey(projectID, domain))
}

// Forget drops every cached key.
func (k *StoreKeys) Forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epoch++
	clear(k.cache)
}

// Listen keeps the cache in step with the domain changes broadcast by
// the API until ctx ends: each changed domain is evicted, and each subscription (the first, and each after a
// reconnect to Redis) drops the whole cache, since changes broadcast while
// none was active are lost. subscribed, when not nil, is called after
// each subscription's drop.
func (k *StoreKeys) Listen(ctx context.Context, changes Changes, subscribed func()) error {
	return changes.Subscribe(ctx, func() {
		k.Forget()
		if subscribed != nil {
			subscribed()
		}
	}, func(payload string) {
		if projectID, domain, ok := queue.ParseDomainChange(payload); ok {
			k.Evict(projectID, domain)
		}
	})
}
