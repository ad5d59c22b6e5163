package queue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// revocationChannel carries the ids of revoked API keys, and changed
// sender domains (DomainChanged), to every API replica, so that a replica
// caching them drops a revoked key or a changed domain at once.
const revocationChannel = "mailgate:keys:revoked"

// Revocations broadcasts API key revocations and sender domain changes
// over Redis pub/sub.
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

// domainChangedPrefix marks a changed sender domain on the revocations
// channel; key ids (letters and digits) never start with it.
const domainChangedPrefix = "domain\x00"

// DomainChanged is the payload that tells every API replica that a
// project's sender domain changed (deleted, or its verification status
// changed), so that they drop what they cached about the name.
func DomainChanged(projectID, domain string) string {
	return domainChangedPrefix + projectID + "\x00" + domain
}

// ParseDomainChanged reads a DomainChanged payload; ok is false for a key
// id.
func ParseDomainChanged(payload string) (projectID, domain string, ok bool) {
	rest, ok := strings.CutPrefix(payload, domainChangedPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "\x00")
}
