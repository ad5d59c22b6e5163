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

// Publish tells every subscriber payload: a revoked key id, or a
// DomainChange.
func (r *Revocations) Publish(ctx context.Context, payload string) error {
	return r.rdb.Publish(ctx, revocationChannel, payload).Err()
}

// Subscribe calls fn with each payload until ctx ends. subscribed is
// called each time the subscription becomes active: the first time, and
// again after go-redis reconnected (a Redis restart, a dropped
// connection) and subscribed anew. Pub/sub does not keep messages, so
// whatever was published in between is lost: a subscriber caching what
// the payloads invalidate drops its whole cache in subscribed. fn and
// subscribed run one at a time, in the order the connection delivers.
func (r *Revocations) Subscribe(ctx context.Context, subscribed func(), fn func(payload string)) error {
	sub := r.rdb.Subscribe(ctx, revocationChannel)
	defer sub.Close()
	ch := sub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					subscribed()
				}
			case *redis.Message:
				fn(m.Payload)
			}
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
