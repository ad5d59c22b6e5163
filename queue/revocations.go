package queue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// revocationChannel carries, to every API replica and worker, the ids of
// revoked API keys and the domains whose registration or DKIM keys
// changed (DomainChange), so that a process caching either drops the
// entry at once.
const revocationChannel = "mailgate:keys:revoked"

// Revocations broadcasts API key revocations and domain changes over
// Redis pub/sub.
type Revocations struct {
	rdb redis.UniversalClient
}

// NewRevocations returns the broadcaster on rdb.
func NewRevocations(rdb redis.UniversalClient) *Revocations { return &Revocations{rdb: rdb} }

// Publish tells every subscriber that key id is revoked.
func (r *Revocations) Publish(ctx context.Context, id string) error {
	return r.rdb.Publish(ctx, revocationChannel, id).Err()
}

// Subscribe calls fn with each revoked key id until ctx ends. ready is
// closed once the subscription is active.
func (r *Revocations) Subscribe(ctx context.Context, ready chan<- struct{}, fn func(id string)) error {
	sub := r.rdb.Subscribe(ctx, revocationChannel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		close(ready)
		return err
	}
	close(ready)
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			fn(m.Payload)
		}
	}
}

// domainChangePrefix marks a domain change on the revocations channel;
// key ids (letters and digits) never start with it.
const domainChangePrefix = "domain\x00"

// DomainChange is the broadcast payload saying that a project's domain
// was registered or deleted, or that its DKIM keys or status changed.
func DomainChange(projectID, domain string) string {
	return domainChangePrefix + projectID + "\x00" + domain
}

// ParseDomainChange reads a DomainChange payload; ok is false for any
// other payload (a key id).
func ParseDomainChange(payload string) (projectID, domain string, ok bool) {
	rest, ok := strings.CutPrefix(payload, domainChangePrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "\x00")
}
