package mta

import (
	"context"
	"errors"
	"time"
)

// Relays sends through an ordered list of relays, moving to the next one
// only when a relay could not take the message at all.
type Relays struct {
	pools []*Pool
}

// NewRelays returns the failover group of pools, first preferred.
func NewRelays(pools []*Pool) *Relays {
	return &Relays{pools: pools}
}

// Pools are the relays in failover order.
func (r *Relays) Pools() []*Pool { return r.pools }

// Send tries each relay in order and returns the name of the relay that
// gave the final outcome, with that outcome (nil or *Error). It moves to the
// next relay when one is unreachable (a network error before the final dot),
// answers 421 (RFC 5321 §3.8), or cannot be used as configured (Config);
// any other answer, and an ambiguous end of data, is final.
func (r *Relays) Send(ctx context.Context, env Envelope, msg []byte) (string, error) {
	res, err := r.Deliver(ctx, env, msg)
	return res.Relay, err
}

// Result is where and how a transaction ended.
type Result struct {
	// Relay is the name of the relay that answered last.
	Relay string
	// Reply is the text of its 250 reply to the final dot ("" on error).
	Reply string
	// Attempts are the relays tried, in order, each with its own answer;
	// the last one's is the final outcome.
	Attempts []Attempt
}

// Attempt is one relay's part in a Deliver.
type Attempt struct {
	Relay string
	// Err is the relay's answer: nil (250) or the transaction's error.
	Err      error
	Duration time.Duration
}

// Gate is asked before each relay is tried (e.g. for that relay's rate
// limit). An error stops the failover; Deliver returns it as it is.
type Gate func(ctx context.Context, relay string) error

// Deliver is Send that also returns the relay's reply text and every
// relay's answer.
func (r *Relays) Deliver(ctx context.Context, env Envelope, msg []byte) (Result, error) {
	return r.DeliverGated(ctx, env, msg, nil)
}

// DeliverGated is Deliver with gate asked before each relay is tried.
func (r *Relays) DeliverGated(ctx context.Context, env Envelope, msg []byte, gate Gate) (Result, error) {
	if len(r.pools) == 0 {
		return Result{}, &Error{Permanent: true, Config: true, Text: "no relay configured"}
	}
	var res Result
	var err error
	for _, p := range r.pools {
		if gate != nil {
			if gerr := gate(ctx, p.Name()); gerr != nil {
				return res, gerr
			}
		}
		began := time.Now()
		res.Relay = p.Name()
		res.Reply, err = p.SendReply(ctx, env, msg)
		res.Attempts = append(res.Attempts, Attempt{Relay: p.Name(), Err: err, Duration: time.Since(began)})
		if err == nil || !failover(ctx, err) {
			return res, err
		}
	}
	return res, err
}

// failover reports whether err leaves the message undelivered and the next
// relay worth trying.
func failover(ctx context.Context, err error) bool {
	var e *Error
	if !errors.As(err, &e) || ctx.Err() != nil || e.Ambiguous {
		return false
	}
	return e.Config || e.Code == 421 || (e.Code == 0 && !e.Permanent)
}

// Close closes every pool.
func (r *Relays) Close() error {
	var errs []error
	for _, p := range r.pools {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
