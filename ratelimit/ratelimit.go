// Package ratelimit owns the limits shared by every mailgate process:
// GCRA (generic cell rate algorithm) counters in Redis through
// go-redis/redis_rate, so that API replicas and workers see one budget per
// key. It decides "now or in how long"; callers decide what waiting means
// (a 429 for the API, a rescheduled task for the worker).
//
// Limiter.Allow is the single-limit primitive (the API's per-key request
// limit). Policy holds every delivery limit — per relay, per recipient
// domain (with built-in defaults for big mailbox providers), per sender
// domain and per API key — and the adaptive relay slow-down after 421/451
// rate answers. ParseRate reads the "N/s", "N/m", "N/h" configuration form.
// The package does not send mail, read configuration or decide retries.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// ErrUnavailable: Redis did not answer a limit's check (unreachable, a
// lost connection, a timeout, an error reply such as LOADING or READONLY),
// so the decision is unknown and nothing was taken; the same check may
// succeed later. The caller's own context ending is not this error.
var ErrUnavailable = errors.New("rate limits unavailable")

// Limit is a rate: Events per Period, with bursts up to Burst.
type Limit struct {
	Events int
	Period time.Duration
	// Burst defaults to Events.
	Burst int
}

// PerSecond is a Limit of n events per second.
func PerSecond(n int) Limit { return Limit{Events: n, Period: time.Second} }

// Off reports whether the limit lets everything through.
func (l Limit) Off() bool { return l.Events <= 0 || l.Period <= 0 }

// Decision is the answer to one Allow.
type Decision struct {
	// Allowed is true when the event may happen now.
	Allowed bool
	// RetryAfter is how long to wait before trying again when not allowed.
	RetryAfter time.Duration
}

// Config configures a Limiter.
type Config struct {
	// Prefix namespaces the Redis keys. Default "mailgate:rl:".
	Prefix string
}

// Limiter takes events from shared limits.
type Limiter struct {
	prefix string
	rdb    redis.UniversalClient
	rl     *redis_rate.Limiter
}

// New returns a Limiter on rdb.
func New(cfg Config, rdb redis.UniversalClient) *Limiter {
	if cfg.Prefix == "" {
		cfg.Prefix = "mailgate:rl:"
	}
	return &Limiter{prefix: cfg.Prefix, rdb: rdb, rl: redis_rate.NewLimiter(rdb)}
}

// Allow takes one event for key in scope under lim. An Off limit always
// allows without asking Redis.
func (l *Limiter) Allow(ctx context.Context, scope, key string, lim Limit) (Decision, error) {
	return l.allowN(ctx, scope, key, lim, 1)
}

// allowN takes n events for key in scope under lim; a negative n gives
// events back (see giveBack in policy.go for its one imprecision).
func (l *Limiter) allowN(ctx context.Context, scope, key string, lim Limit, n int) (Decision, error) {
	if lim.Off() {
		return Decision{Allowed: true}, nil
	}
	res, err := l.rl.AllowN(ctx, l.prefix+scope+":"+key,
		redis_rate.Limit{Rate: lim.Events, Burst: lim.burst(), Period: lim.Period}, n)
	if err != nil && ctx.Err() == nil {
		return Decision{}, fmt.Errorf("rate limit %s: %w: %w", scope, ErrUnavailable, err)
	}
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit %s: %w", scope, err)
	}
	if res.Allowed != 0 {
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAfter: res.RetryAfter}, nil
}
