package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/store"
)

// Opener opens sealed secrets (keyring.Keyring).
type Opener interface {
	Open(sealed, aad []byte) ([]byte, error)
}

// StoreKeys is the KeySource of a running worker: a domain's active DKIM
// keys from the store, opened with the master key, parsed, and cached for
// a short while so that signing does not decrypt and parse on every send.
type StoreKeys struct {
	store  *store.Store
	opener Opener
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedKeys
}

type cachedKeys struct {
	keys    []mta.DKIMKey
	expires time.Time
}

// NewStoreKeys returns a KeySource; ttl (default 30 s) bounds how long a
// rotation or retirement takes to reach this worker.
func NewStoreKeys(st *store.Store, opener Opener, ttl time.Duration, now func() time.Time) *StoreKeys {
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &StoreKeys{store: st, opener: opener, ttl: ttl, now: now, cache: map[string]cachedKeys{}}
}

// SigningKeys implements KeySource.
func (k *StoreKeys) SigningKeys(ctx context.Context, projectID, domain string) ([]mta.DKIMKey, error) {
	id := projectID + "\x00" + domain
	now := k.now()
	k.mu.Lock()
	c, ok := k.cache[id]
	k.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.keys, nil
	}
	keys, err := k.load(ctx, projectID, domain)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.cache[id] = cachedKeys{keys: keys, expires: now.Add(k.ttl)}
	k.mu.Unlock()
	return keys, nil
}

func (k *StoreKeys) load(ctx context.Context, projectID, domain string) ([]mta.DKIMKey, error) {
	rows, err := k.store.SigningKeys(ctx, projectID, domain)
	if err != nil {
		return nil, err
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
