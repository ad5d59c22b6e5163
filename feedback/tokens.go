package feedback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrTokensUnavailable: the shared memory of used tokens (Redis) did not
// answer, so whether a token was used is unknown and the notification is
// neither taken nor refused as a replay: the caller answers so that the
// provider retries (Mailgun retries anything but a 2xx or 406).
var ErrTokensUnavailable = errors.New("feedback: used-token memory unavailable")

// RedisTokens is the TokenClaimer every process receiving notifications
// shares: a used token is a Redis key set with SET NX and an expiry, so the
// first claim anywhere wins and every later one, at any process, is
// refused until the key expires.
//
// Redis restarting empty forgets the tokens used before. A replay then
// passes the token check only while its signed timestamp is still fresh
// (the verifier's MaxAge), and its events are still applied once: the
// effects are recorded per project and provider event id (package
// inbound), so the replay writes nothing.
type RedisTokens struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisTokens remembers tokens in rdb under keys that start with
// prefix ("mailgate:feedback:token:" when empty).
func NewRedisTokens(rdb redis.UniversalClient, prefix string) *RedisTokens {
	if prefix == "" {
		prefix = "mailgate:feedback:token:"
	}
	return &RedisTokens{rdb: rdb, prefix: prefix}
}

// Claim implements TokenClaimer. Redis not answering (unreachable, a lost
// connection, an error reply) is ErrTokensUnavailable.
func (r *RedisTokens) Claim(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	if ttl < time.Second {
		ttl = time.Second // SET with no expiry would remember the token forever
	}
	ok, err := r.rdb.SetNX(ctx, r.prefix+token, 1, ttl).Result()
	if err != nil && ctx.Err() == nil {
		return false, fmt.Errorf("%w: %w", ErrTokensUnavailable, err)
	}
	if err != nil {
		return false, fmt.Errorf("claim token: %w", err)
	}
	return ok, nil
}

// Release implements TokenClaimer.
func (r *RedisTokens) Release(ctx context.Context, token string) error {
	if err := r.rdb.Del(ctx, r.prefix+token).Err(); err != nil {
		return fmt.Errorf("release token: %w", err)
	}
	return nil
}
