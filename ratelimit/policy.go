package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newDelaysMetric declares mailgate_ratelimit_delays_total: sends held back
// by a delivery limit. Label scope: relay, recipient_domain, sender_domain,
// key. One collector per Policy, registered through Policy.Register.
func newDelaysMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailgate_ratelimit_delays_total",
		Help: "Sends held back by a delivery rate limit, by the scope that refused them.",
	}, []string{"scope"})
}

// Scopes of delivery limits, as named in Reservation.Scope and in the scope
// label of mailgate_ratelimit_delays_total.
const (
	ScopeRelay           = "relay"
	ScopeRecipientDomain = "recipient_domain"
	ScopeSenderDomain    = "sender_domain"
	ScopeKey             = "key"
)

// Redis key scopes of delivery limits. The per-key delivery limit uses its
// own name so that it never shares a budget with the API's per-key request
// limit (scope "key" of Limiter.Allow).
const (
	redisRelay     = "send_relay"
	redisRecipient = "send_rcpt"
	redisSender    = "send_sender"
	redisKey       = "send_key"
)

// PolicyConfig configures every delivery limit. The zero value applies only
// the built-in provider defaults (see providerDefaults) and the adaptive
// slow-down with its defaults.
type PolicyConfig struct {
	// Relay maps a relay name to its limits (for example 5/s, 200/m,
	// 5000/h; all must allow). A relay not listed has no limit of its own.
	Relay map[string][]Limit
	// RecipientDomains maps a recipient domain (case-insensitive) to its
	// limits, replacing the built-in default of that domain; a domain mapped
	// to nil or an empty list has no limit at all. Each listed domain has
	// its own budget.
	RecipientDomains map[string][]Limit
	// DisableProviderDefaults turns the built-in mailbox-provider table off;
	// RecipientDomains still applies. Default false.
	DisableProviderDefaults bool
	// SenderDomain applies to each sender domain separately. Default none.
	SenderDomain []Limit
	// Key applies to each API key separately. Default none.
	Key []Limit
	// SlowDown configures the adaptive relay slow-down after 421/451 rate
	// answers.
	SlowDown SlowDownConfig
	// Now is the clock of the slow-down state. Default time.Now. (The GCRA
	// counters themselves run on the Redis server's clock.)
	Now func() time.Time
}

// Policy applies every delivery limit, shared by all processes on one Redis.
type Policy struct {
	cfg       PolicyConfig
	lim       *Limiter
	recipient map[string][]Limit
	providers map[string]provider
	delays    *prometheus.CounterVec
	slow      slowCache
}

// NewPolicy returns the Policy of cfg on l.
func NewPolicy(cfg PolicyConfig, l *Limiter) *Policy {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.SlowDown = cfg.SlowDown.withDefaults()
	p := &Policy{cfg: cfg, lim: l, recipient: make(map[string][]Limit),
		providers: map[string]provider{}, delays: newDelaysMetric()}
	for d, ls := range cfg.RecipientDomains {
		p.recipient[normDomain(d)] = ls
	}
	if !cfg.DisableProviderDefaults {
		p.providers = providerIndex()
	}
	for _, s := range []string{ScopeRelay, ScopeRecipientDomain, ScopeSenderDomain, ScopeKey} {
		p.delays.WithLabelValues(s)
	}
	return p
}

// Register registers the Policy's metrics with reg.
func (p *Policy) Register(reg prometheus.Registerer) error {
	return reg.Register(p.delays)
}

// Request names what one send goes through. An empty field skips its scope.
type Request struct {
	// Relay is the name of the upstream relay.
	Relay string
	// RecipientDomain is the domain of the recipient address.
	RecipientDomain string
	// SenderDomain is the domain of the From address.
	SenderDomain string
	// KeyID is the id of the API key that submitted the message.
	KeyID string
}

// Reservation is the answer to Reserve.
type Reservation struct {
	// Allowed is true when the send may happen now; one event was taken from
	// every applicable limit.
	Allowed bool
	// RetryAfter is when to try again when not allowed.
	RetryAfter time.Duration
	// Scope names the limit that refused (ScopeRelay, ScopeRecipientDomain,
	// ScopeSenderDomain, ScopeKey); empty when allowed.
	Scope string
}

// bucket is one GCRA counter a send must take an event from.
type bucket struct {
	scope string // Reservation scope
	redis string // Redis key scope
	key   string
	limit Limit
}

// Reserve takes one send from every limit that applies to r, in the order
// relay, recipient domain, sender domain, key. When one refuses, the events
// already taken from the earlier ones are given back, so a refused send does
// not consume their budget — with one bound, see giveBack. A refusal names
// its scope and counts in mailgate_ratelimit_delays_total. A Redis error
// while taking returns no Reservation; one while giving back is returned
// with the refusal (that budget is then over-counted, never under-counted).
func (p *Policy) Reserve(ctx context.Context, r Request) (Reservation, error) {
	buckets, err := p.buckets(ctx, r)
	if err != nil {
		return Reservation{}, err
	}
	for i, b := range buckets {
		d, err := p.lim.allowN(ctx, b.redis, b.key, b.limit, 1)
		if err == nil && d.Allowed {
			continue
		}
		gerr := p.giveBack(ctx, buckets[:i])
		if err != nil {
			return Reservation{}, errors.Join(err, gerr)
		}
		p.delays.WithLabelValues(b.scope).Inc()
		return Reservation{RetryAfter: d.RetryAfter, Scope: b.scope}, gerr
	}
	return Reservation{Allowed: true}, nil
}

// giveBack returns one event to each bucket (redis_rate AllowN with n = -1).
// One imprecision remains: when a bucket was idle before this send took its
// event, redis_rate does not write the given-back state (it would lie in the
// past), so that bucket stays one event short for at most one emission
// interval (Period/Events) — never more than one event per refused send.
// The error is reported, and the budget is then over-counted, never
// under-counted.
func (p *Policy) giveBack(ctx context.Context, taken []bucket) error {
	var errs []error
	for _, b := range taken {
		if _, err := p.lim.allowN(ctx, b.redis, b.key, b.limit, -1); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// buckets lists the counters that apply to r, with the relay's limits
// already adjusted by its slow-down state.
func (p *Policy) buckets(ctx context.Context, r Request) ([]bucket, error) {
	var out []bucket
	add := func(scope, redisScope, key string, ls []Limit) {
		for i, l := range ls {
			if !l.Off() {
				out = append(out, bucket{scope, redisScope, key + ":" + strconv.Itoa(i), l})
			}
		}
	}
	if r.Relay != "" {
		ls, err := p.RelayLimits(ctx, r.Relay)
		if err != nil {
			return nil, err
		}
		add(ScopeRelay, redisRelay, r.Relay, ls)
	}
	if r.RecipientDomain != "" {
		key, ls := p.recipientLimits(r.RecipientDomain)
		add(ScopeRecipientDomain, redisRecipient, key, ls)
	}
	if r.SenderDomain != "" {
		add(ScopeSenderDomain, redisSender, normDomain(r.SenderDomain), p.cfg.SenderDomain)
	}
	if r.KeyID != "" {
		add(ScopeKey, redisKey, r.KeyID, p.cfg.Key)
	}
	return out, nil
}

// RecipientLimits reports the limits that apply to mail for domain: its
// configured override, else its provider's default, else none.
func (p *Policy) RecipientLimits(domain string) []Limit {
	_, ls := p.recipientLimits(domain)
	return ls
}

// recipientLimits returns the budget key and limits of a recipient domain.
// A provider's domains share the budget "provider/NAME"; a configured
// domain has its own, "domain/NAME".
func (p *Policy) recipientLimits(domain string) (string, []Limit) {
	d := normDomain(domain)
	if ls, ok := p.recipient[d]; ok {
		return "domain/" + d, ls
	}
	if prov, ok := p.providers[d]; ok {
		return "provider/" + prov.name, prov.limits
	}
	return "", nil
}

// normDomain lowercases a domain and drops a trailing dot.
func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
