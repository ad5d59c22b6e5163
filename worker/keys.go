package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// StoreKeys is the KeySource of a running worker: a domain's status,
// whether another project has it verified, and its active DKIM keys from
// the store, opened with the master key, parsed, and cached so that a
// send does not query, decrypt and parse every time.
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
	sender  SenderKeys
	expires time.Time
}

// SenderKeys is what a send needs of its sender domain in its project.
type SenderKeys struct {
	// Registered: the project has the domain.
	Registered bool
	// Status is the domain's status (store.DomainPending, …) when
	// Registered.
	Status string
	// VerifiedElsewhere: another project has the name verified.
	VerifiedElsewhere bool
	// Keys sign the message: every active key of a registered domain;
	// none otherwise.
	Keys []mta.DKIMKey
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

// SigningKeys implements KeySource: for a domain the project has not
// registered, no keys and whether another project has the name verified;
// for a registered one, its status, whether another project has the name
// verified and every active key, or an error when they cannot be had (the
// store fails, a key does not open with the master key or does not
// parse, no key is active).
func (k *StoreKeys) SigningKeys(ctx context.Context, projectID, domain string) (SenderKeys, error) {
	id := keysCacheKey(projectID, domain)
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[id]
	epoch := k.epoch
	k.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.sender, nil
	}
	sk, err := k.load(ctx, projectID, domain)
	if err != nil || !sk.Registered {
		return sk, err
	}
	k.mu.Lock()
	if k.epoch == epoch {
		if len(k.cache) >= maxCachedDomains {
			clear(k.cache)
		}
		k.cache[id] = cachedKeys{sender: sk, expires: now.Add(k.ttl)}
	}
	k.mu.Unlock()
	return sk, nil
}

// errNoActiveKey: a registered domain without an active key, which the
// store keeps from happening but a change behind its back could cause.
var errNoActiveKey = errors.New("no active DKIM key")

func (k *StoreKeys) load(ctx context.Context, projectID, domain string) (SenderKeys, error) {
	sd, err := k.store.SigningKeys(ctx, projectID, domain)
	switch {
	case err != nil:
		return SenderKeys{}, err
	case !sd.Registered:
		return SenderKeys{VerifiedElsewhere: sd.VerifiedElsewhere}, nil
	case len(sd.Keys) == 0:
		return SenderKeys{}, fmt.Errorf("%s: %w", domain, errNoActiveKey)
	}
	out := make([]mta.DKIMKey, 0, len(sd.Keys))
	for _, r := range sd.Keys {
		pemKey, err := k.opener.Open(r.PrivateKeySealed, dkimkey.SealAAD(domain, r.Selector))
		if err != nil {
			return SenderKeys{}, fmt.Errorf("open dkim key %s of %s: %w", r.Selector, domain, err)
		}
		signer, err := dkimkey.ParsePrivateKey(pemKey)
		if err != nil {
			return SenderKeys{}, fmt.Errorf("parse dkim key %s of %s: %w", r.Selector, domain, err)
		}
		out = append(out, mta.DKIMKey{Domain: domain, Selector: r.Selector, Signer: mta.AccelerateKey(signer)})
	}
	return SenderKeys{Registered: true, Status: sd.Status, VerifiedElsewhere: sd.VerifiedElsewhere, Keys: out}, nil
}

// Evict drops what is cached of a project's domain: it was registered or
// deleted, its keys or its status changed. Every project's entry for the
// name goes, since each caches whether another project has it verified.
func (k *StoreKeys) Evict(projectID, domain string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.epoch++
	delete(k.cache, keysCacheKey(projectID, domain))
	suffix := "\x00" + domain
	for id := range k.cache {
		if strings.HasSuffix(id, suffix) {
			delete(k.cache, id)
		}
	}
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
