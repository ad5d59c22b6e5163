package queue

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// revocationChannel carries the ids of revoked API keys to every API
// replica, so that a replica caching keys drops a revoked one at once.
const revocationChannel = "mailgate:keys:revoked"

// Revocations broadcasts API key revocations over Redis pub/sub.
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
