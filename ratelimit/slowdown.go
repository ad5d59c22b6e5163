package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SlowDownConfig configures the adaptive relay slow-down: each rate answer
// (421/451) from a relay halves its limits, shared by every worker through
// Redis; after CoolOff without another such answer the rate doubles back one
// step every RecoverStep.
type SlowDownConfig struct {
	// Disabled turns the slow-down off. Default false.
	Disabled bool
	// CoolOff is how long a relay stays at its lowered rate after the last
	// rate answer. Default 5 minutes.
	CoolOff time.Duration
	// RecoverStep is the time between two recovery steps (each doubles the
	// rate back) once the cool-off is over. Default 1 minute.
	RecoverStep time.Duration
	// MaxLevel caps the halvings: the rate never drops below 1/2^MaxLevel of
	// the configured one, nor below 1 event per the limit's period. Default 4,
	// at most 30.
	MaxLevel int
	// Hold is the time after a halving during which further rate answers only
	// extend the cool-off, so that many workers hit by the same burst of
	// 421s halve the rate once. Default 10 seconds.
	Hold time.Duration
	// Unlimited is the rate a relay without configured limits is treated as
	// having when it gets slowed down (halved from there). Default 50/s.
	Unlimited Limit
	// StateCache is how long a Policy reuses a relay's slow-down state
	// read from Redis before reading it again, so that a send does not pay
	// a Redis round trip for it; another worker's halving reaches this one
	// within that time (its own at once). Measured on the wall clock, not
	// PolicyConfig.Now. Default 100 ms; negative reads Redis on every send.
	StateCache time.Duration
}

// withDefaults fills the zero fields of c.
func (c SlowDownConfig) withDefaults() SlowDownConfig {
	if c.CoolOff <= 0 {
		c.CoolOff = 5 * time.Minute
	}
	if c.RecoverStep <= 0 {
		c.RecoverStep = time.Minute
	}
	if c.MaxLevel <= 0 {
		c.MaxLevel = 4
	}
	c.MaxLevel = min(c.MaxLevel, 30)
	if c.Hold <= 0 {
		c.Hold = 10 * time.Second
	}
	if c.Unlimited.Off() {
		c.Unlimited = PerSecond(50)
	}
	if c.StateCache == 0 {
		c.StateCache = 100 * time.Millisecond
	}
	return c
}

// slowCache holds the slow-down states a Policy read lately, by relay.
type slowCache struct {
	mu     sync.Mutex
	states map[string]cachedSlow
}

type cachedSlow struct {
	st    slowState
	until time.Time // wall clock
}

// get returns relay's state when it was read less than ttl ago.
func (c *slowCache) get(relay string, now time.Time) (slowState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.states[relay]
	if !ok || !now.Before(e.until) {
		return slowState{}, false
	}
	return e.st, true
}

// put remembers relay's state until now+ttl.
func (c *slowCache) put(relay string, st slowState, now time.Time, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.states == nil {
		c.states = map[string]cachedSlow{}
	}
	c.states[relay] = cachedSlow{st: st, until: now.Add(ttl)}
}

// cachedSlow is loadSlow through the Policy's cache.
func (p *Policy) cachedSlow(ctx context.Context, relay string) (slowState, error) {
	now := time.Now()
	if st, ok := p.slow.get(relay, now); ok {
		return st, nil
	}
	st, err := p.loadSlow(ctx, relay)
	if err != nil {
		return slowState{}, err
	}
	p.slow.put(relay, st, now, p.cfg.SlowDown.StateCache)
	return st, nil
}

// rateAnswerText matches the wording relays and mailbox providers use when
// they throttle a sender (Gmail "4.7.28 … unusual rate", Yahoo "TSS04 …
// temporarily deferred due to unexpected volume", Microsoft "server busy").
var rateAnswerText = regexp.MustCompile(`(?i)rate|too many|throttl|slow(ing)? down|limit|try again later|temporarily deferred|volume|busy`)

// IsRateAnswer reports whether an SMTP reply asks the sender to slow down:
// code 421 (RFC 5321 §4.2.2, service not available) or 451 (local error in
// processing) with text about rate, volume or throttling. The worker calls
// SlowDown for such answers.
func IsRateAnswer(code int, text string) bool {
	return (code == 421 || code == 451) && rateAnswerText.MatchString(text)
}

// slowState is a relay's slow-down state as stored in Redis. Times come
// from the Policy's injected clock, in Unix milliseconds.
type slowState struct {
	level int   // halvings at the last rate answer
	since int64 // time of the last rate answer
	cut   int64 // time of the last halving
}

// levelAt is the number of halvings in force at now: the stored level until
// CoolOff after the last rate answer, then one less every RecoverStep.
func (s slowState) levelAt(now time.Time, c SlowDownConfig) int {
	if s.level <= 0 {
		return 0
	}
	elapsed := now.Sub(time.UnixMilli(s.since))
	if elapsed < c.CoolOff {
		return s.level
	}
	steps := 1 + int((elapsed-c.CoolOff)/c.RecoverStep)
	return max(s.level-steps, 0)
}

// slowKey is the Redis hash holding relay's slow-down state.
func (p *Policy) slowKey(relay string) string {
	return p.lim.prefix + "send_slow:" + relay
}

// loadSlow reads relay's slow-down state; no state is level 0.
func (p *Policy) loadSlow(ctx context.Context, relay string) (slowState, error) {
	vals, err := p.lim.rdb.HMGet(ctx, p.slowKey(relay), "level", "since", "cut").Result()
	if err != nil {
		return slowState{}, fmt.Errorf("load slow-down of relay %s: %w", relay, err)
	}
	var n [3]int64
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			return slowState{}, nil
		}
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return slowState{}, fmt.Errorf("slow-down of relay %s: %w", relay, err)
		}
	}
	return slowState{level: int(n[0]), since: n[1], cut: n[2]}, nil
}

// SlowDown records a rate answer (421/451, see IsRateAnswer) from relay:
// unless it was halved less than Hold ago, its limits halve (down to
// MaxLevel); either way its cool-off restarts. The state lives in Redis, so
// every worker's next Reserve uses the lowered rate. Two workers recording
// at the same instant may both write the same new level; that is one
// halving, as intended.
func (p *Policy) SlowDown(ctx context.Context, relay string) error {
	c := p.cfg.SlowDown
	if relay == "" {
		return ErrNoRelay
	}
	if c.Disabled {
		return nil
	}
	st, err := p.loadSlow(ctx, relay)
	if err != nil {
		return err
	}
	now := p.cfg.Now()
	level := st.levelAt(now, c)
	next := slowState{level: level, since: now.UnixMilli(), cut: st.cut}
	if level == 0 || now.Sub(time.UnixMilli(st.cut)) >= c.Hold {
		next.level, next.cut = min(level+1, c.MaxLevel), now.UnixMilli()
	}
	ttl := c.CoolOff + time.Duration(c.MaxLevel)*c.RecoverStep + c.Hold
	_, err = p.lim.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		key := p.slowKey(relay)
		pipe.HSet(ctx, key, "level", next.level, "since", next.since, "cut", next.cut)
		pipe.PExpire(ctx, key, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("slow down relay %s: %w", relay, err)
	}
	p.slow.put(relay, next, time.Now(), c.StateCache)
	return nil
}

// RelayLimits reports relay's limits in force now: the configured ones
// divided by 2^level of its slow-down, each at least 1 event per its period.
// A relay without configured limits has none until slowed down, then
// SlowDownConfig.Unlimited divided likewise.
func (p *Policy) RelayLimits(ctx context.Context, relay string) ([]Limit, error) {
	base := p.cfg.Relay[relay]
	if p.cfg.SlowDown.Disabled {
		return base, nil
	}
	st, err := p.cachedSlow(ctx, relay)
	if err != nil {
		return nil, err
	}
	level := st.levelAt(p.cfg.Now(), p.cfg.SlowDown)
	if level == 0 {
		return base, nil
	}
	if !anyOn(base) {
		base = []Limit{p.cfg.SlowDown.Unlimited}
	}
	out := make([]Limit, 0, len(base))
	for _, l := range base {
		out = append(out, l.divided(level))
	}
	return out, nil
}

// divided is l with its events and burst divided by 2^level, at least 1.
func (l Limit) divided(level int) Limit {
	if l.Off() {
		return l
	}
	l.Events = max(l.Events>>level, 1)
	if l.Burst > 0 {
		l.Burst = max(l.Burst>>level, 1)
	}
	return l
}

// anyOn reports whether any of ls limits something.
func anyOn(ls []Limit) bool {
	for _, l := range ls {
		if !l.Off() {
			return true
		}
	}
	return false
}

// ErrNoRelay is returned by SlowDown for an empty relay name.
var ErrNoRelay = errors.New("slow down: empty relay name")
