package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// DeliveryConfig configures a Deliverer.
type DeliveryConfig struct {
	// RetryBase is the first retry delay after a temporary failure; it
	// doubles each time up to RetryMax. Default 1 minute.
	RetryBase time.Duration
	// RetryMax caps the retry delay. Default 1 hour.
	RetryMax time.Duration
	// MaxAge is how long a message may wait for delivery (from its
	// creation, or its send_at); past it pending recipients fail with
	// reason "expired". Default 72 hours.
	MaxAge time.Duration
	// StartMargin: a send task starts no further SMTP transaction (no
	// next message of a batch, no next recipient of a message) once less
	// than this is left before its deadline (queue.Config.Timeout), e.g.
	// after a long wait for a delivery slot or a stalling relay, so that
	// the timeout never cuts a transaction; the task runs again at once.
	// It is at least a whole SMTP transaction under RFC 5321 §4.5.3.2's
	// timeouts (about 31 minutes at worst). A run that began with less
	// than this left (a Timeout below it) still starts its first message
	// and, of each message, its first recipient. Measured on the wall
	// clock, as task deadlines are. Default 32 minutes.
	StartMargin time.Duration
	// HoldWait: a send held back by a rate limit for at most this long
	// waits in its task (keeping its delivery slot) and tries again,
	// for up to 5×HoldWait in all, instead of being rescheduled: asynq
	// schedules a retry to the whole second, which would leave a limit of
	// a few sends per second mostly unused. A longer hold reschedules the
	// task for when the limit allows. Default 1 second; negative never
	// waits.
	HoldWait time.Duration
	// WriteRetryMax caps the wait between tries to write what a send
	// decided (an outcome, a release, an expiry) while the database is
	// unavailable; the wait starts at a tenth of a second and doubles.
	// Default 5 seconds.
	WriteRetryMax time.Duration
	// Sleep waits d, or until ctx is done (its error). Default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Production: mail from a registered domain that is not verified
	// is deferred (reason sender_domain_unverified) until it is verified
	// or the message expires; in development it is sent.
	Production bool
	// AllowedSenderDomains (lower case) may send without registration,
	// unsigned, while no project has the name verified; mail from any
	// other domain the project has not registered fails.
	AllowedSenderDomains []string
}

func (c DeliveryConfig) withDefaults() DeliveryConfig {
	if c.RetryBase == 0 {
		c.RetryBase = time.Minute
	}
	if c.RetryMax == 0 {
		c.RetryMax = time.Hour
	}
	if c.MaxAge == 0 {
		c.MaxAge = 72 * time.Hour
	}
	if c.StartMargin == 0 {
		c.StartMargin = 32 * time.Minute
	}
	if c.HoldWait == 0 {
		c.HoldWait = time.Second
	}
	if c.WriteRetryMax == 0 {
		c.WriteRetryMax = 5 * time.Second
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Relay sends one SMTP transaction (mta.Relays).
type Relay interface {
	DeliverGated(ctx context.Context, env mta.Envelope, msg []byte, gate mta.Gate) (mta.Result, error)
}

// Limits decides when a send may happen (ratelimit.Policy).
type Limits interface {
	Reserve(ctx context.Context, r ratelimit.Request) (ratelimit.Reservation, error)
	SlowDown(ctx context.Context, relay string) error
}

// ReturnPath makes the VERP envelope sender of one recipient (verp.Codec).
type ReturnPath interface {
	Address(messageID string, recipient int) (string, error)
}

// KeySource gives what a send needs of a project's sender domain: its
// status, whether another project has the name verified, and the DKIM
// keys to sign with (none for a domain the project has not registered);
// an error when a registered domain's keys cannot be had (the message is
// deferred: a registered domain's mail never leaves unsigned).
type KeySource interface {
	SigningKeys(ctx context.Context, projectID, domain string) (SenderKeys, error)
}

// DeliveryDeps are a Deliverer's collaborators.
type DeliveryDeps struct {
	Store      *store.Store
	Relay      Relay
	Limits     Limits
	ReturnPath ReturnPath
	Keys       KeySource
	Signer     *mta.Signer
	Metrics    *Metrics
	Log        *slog.Logger
}

// Deliverer runs the send task: one attempt at every pending recipient
// of one message.
type Deliverer struct {
	cfg  DeliveryConfig
	deps DeliveryDeps
}

// NewDeliverer returns a Deliverer.
func NewDeliverer(cfg DeliveryConfig, deps DeliveryDeps) *Deliverer {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics()
	}
	return &Deliverer{cfg: cfg.withDefaults(), deps: deps}
}

// errDeferred: at least one recipient failed temporarily; the task
// retries on the schedule.
var errDeferred = errors.New("delivery deferred")

// heldBack is a rate-limit wait: the task is rescheduled for when the
// limit allows, and that is not a failed attempt.
type heldBack struct {
	scope string
	after time.Duration
}

func (h *heldBack) Error() string {
	return fmt.Sprintf("held back by the %s rate limit for %s", h.scope, h.after)
}

// IsFailure is asynq's IsFailure: rate-limit waits and runs cut short
// (cutShort) are not failures.
func IsFailure(err error) bool {
	var h *heldBack
	var c *cutShort
	return !errors.As(err, &h) && !errors.As(err, &c)
}

// RetryDelay is asynq's RetryDelayFunc: a rate-limit wait retries when the
// limit allows, a run cut short at once; other errors back off from
// RetryBase, doubling, to RetryMax.
// A send task handed over by a batch task goes on from the failures the
// batch task saw (queue.SendPayload.Retried).
func (d *Deliverer) RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	var h *heldBack
	if errors.As(err, &h) {
		return max(h.after, 10*time.Millisecond)
	}
	var c *cutShort
	if errors.As(err, &c) {
		return 10 * time.Millisecond
	}
	if t != nil && t.Type() == queue.TypeSend {
		if p, perr := queue.ParseSendPayload(t.Payload()); perr == nil {
			n += p.Retried
		}
	}
	return d.backoff(n)
}

// backoff is the delay after n+1 failed attempts: RetryBase, doubling,
// at most RetryMax.
func (d *Deliverer) backoff(n int) time.Duration {
	delay := d.cfg.RetryBase
	for i := 0; i < n && delay < d.cfg.RetryMax; i++ {
		delay *= 2
	}
	return min(delay, d.cfg.RetryMax)
}

// Deliver makes one attempt at a message: load it, skip what is final,
// re-check suppressions and record the attempt (one transaction,
// store.StartDelivery), build and sign, then per
// recipient take the rate limits and relay, recording each outcome in its
// own transaction as soon as it is known. Its error is the retry protocol.
// retried counts the failed attempts made before the task existed
// (queue.SendPayload.Retried); with asynq's retry count it gives the
// delay before the next attempt, recorded with a deferral.
func (d *Deliverer) Deliver(ctx context.Context, messageID string, retried int) error {
	n, _ := asynq.GetRetryCount(ctx)
	return d.deliver(ctx, messageID, false, n+retried)
}

// errAttempted: DeliverFirst found a message attempted before; nothing was
// done, and its later attempts belong to its own send task.
var errAttempted = errors.New("message attempted before")

// notStarted wraps an error of DeliverFirst's start: nothing was written,
// and the message is still the batch's to send.
type notStarted struct{ err error }

func (e *notStarted) Error() string { return e.err.Error() }
func (e *notStarted) Unwrap() error { return e.err }

// DeliverFirst is Deliver for a message's first attempt (a batch send
// task): errAttempted when the message was attempted before, a *notStarted
// error when its start failed (nothing was written), otherwise Deliver's
// retry protocol.
func (d *Deliverer) DeliverFirst(ctx context.Context, messageID string) error {
	return d.deliver(ctx, messageID, true, 0)
}

// defaultTaskTimeout is a run's length when its context has no deadline
// (queue.Config.Timeout's default).
const defaultTaskTimeout = time.Hour

// deliver is Deliver, or DeliverFirst when firstOnly; failures is the
// number of failed attempts before this one. The start records when this
// run's task ends (its deadline, on the deliverer's clock), and a
// deferral when the retry is due (RetryDelay's backoff): a message still
// sending or deferred after that has lost its task, and the reconciler
// gives it one again.
func (d *Deliverer) deliver(ctx context.Context, messageID string, firstOnly bool, failures int) error {
	startDelivery := d.deps.Store.StartDelivery
	if firstOnly {
		startDelivery = d.deps.Store.StartFirstDelivery
	}
	ends := d.cfg.Now().Add(defaultTaskTimeout)
	if deadline, ok := ctx.Deadline(); ok {
		ends = d.cfg.Now().Add(time.Until(deadline))
	}
	dl, start, err := startDelivery(ctx, messageID, ends)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("deliver %s: %w: %w", messageID, err, asynq.SkipRetry)
	case err != nil && firstOnly:
		return &notStarted{err}
	case err != nil:
		return err
	case start.Attempted:
		return errAttempted
	case len(start.Send) == 0:
		return nil
	}
	if d.expired(dl) {
		return d.expire(ctx, dl, start.Send)
	}
	retryAt := d.cfg.Now().Add(d.backoff(failures))
	sk, err := d.deps.Keys.SigningKeys(ctx, dl.ProjectID, dl.FromDomain)
	if err != nil {
		return d.deferUnsignable(ctx, dl, start.Send, err, retryAt)
	}
	if reason, text, fail := d.judgeSender(dl.FromDomain, sk); reason != "" {
		return d.refuseSender(ctx, dl, start.Send, reason, text, fail, retryAt)
	}
	raw, err := d.render(dl, sk.Keys)
	if err != nil {
		d.release(ctx, dl, start.Send)
		return fmt.Errorf("render %s: %w", dl.ID, err)
	}
	return d.relayAll(ctx, dl, start.Send, raw, retryAt)
}

// Reasons a send is refused for its sender domain at send time (the
// reason of message.failed or message.deferred event data).
const (
	reasonNotOwned      = "sender_domain_not_owned"
	reasonNotRegistered = "sender_domain_not_registered"
	reasonUnverified    = "sender_domain_unverified"
)

// judgeSender re-checks the sender domain at send time, since it may have
// changed after the API accepted the message (scheduled, or deferred): a
// name another project has verified fails (never signed with this
// project's keys, nor sent unsigned under the allowed list); one the
// project has not registered fails unless allowed; in production, one
// not verified defers. reason is empty when the message may go.
func (d *Deliverer) judgeSender(domain string, sk SenderKeys) (reason, text string, fail bool) {
	switch {
	case sk.VerifiedElsewhere:
		return reasonNotOwned, "not sent: " + domain + " is verified by another project", true
	case !sk.Registered && !slices.Contains(d.cfg.AllowedSenderDomains, domain):
		return reasonNotRegistered, "not sent: " + domain + " is not a registered sender domain", true
	case sk.Registered && d.cfg.Production && sk.Status != store.DomainVerified:
		return reasonUnverified, "not sent: " + domain + " is " + sk.Status + ", not verified", false
	}
	return "", "", false
}

// refuseSender records the refusal of every recipient of an attempt for
// its sender domain: failed (no retry), or deferred until retryAt.
func (d *Deliverer) refuseSender(ctx context.Context, dl store.Delivery, rs []store.DeliveryRecipient,
	reason, text string, fail bool, retryAt time.Time) error {
	d.deps.Log.Warn("not sending: sender domain refused", "domain", dl.FromDomain, "message_id", dl.ID,
		"reason", reason)
	data := eventData(map[string]any{"reason": reason, "detail": text})
	status, event, at := store.StatusDeferred, store.EventDeferred, retryAt
	if fail {
		status, event, at = store.StatusFailed, store.EventFailed, time.Time{}
	}
	outs := make([]store.Outcome, len(rs))
	for i, r := range rs {
		outs[i] = store.Outcome{Position: r.Position, Email: r.Email, Status: status,
			SMTPResponse: text, Event: event, EventData: data}
	}
	if err := d.keep(ctx, func(ctx context.Context) error {
		return d.deps.Store.RecordOutcomes(ctx, dl.ID, outs, at)
	}); err != nil {
		return fmt.Errorf("record outcome of %s: %w", dl.ID, err)
	}
	if fail {
		return nil
	}
	return errDeferred
}

// deferUnsignable defers every recipient of an attempt whose sender
// domain is registered but whose DKIM keys cannot be had (keysErr), rather
// than send the message unsigned: each gets message.deferred with reason
// dkim_unavailable, and the task retries on the backoff schedule (until
// MaxAge expires the message). keysErr names the domain and selector,
// never key material; it is logged, and the deferral counted.
func (d *Deliverer) deferUnsignable(ctx context.Context, dl store.Delivery, rs []store.DeliveryRecipient,
	keysErr error, retryAt time.Time) error {
	d.deps.Metrics.dkimUnavailable.WithLabelValues(dl.FromDomain).Inc()
	d.deps.Log.Error("deferring: the sender domain's DKIM keys cannot be loaded", "domain", dl.FromDomain,
		"message_id", dl.ID, "err", keysErr)
	text := "not sent: the DKIM keys of " + dl.FromDomain + " cannot be loaded"
	data := eventData(map[string]any{"reason": "dkim_unavailable", "smtp_response": text})
	outs := make([]store.Outcome, len(rs))
	for i, r := range rs {
		outs[i] = store.Outcome{Position: r.Position, Email: r.Email, Status: store.StatusDeferred,
			SMTPResponse: text, Event: store.EventDeferred, EventData: data}
	}
	if err := d.keep(ctx, func(ctx context.Context) error {
		return d.deps.Store.RecordOutcomes(ctx, dl.ID, outs, retryAt)
	}); err != nil {
		return fmt.Errorf("record outcome of %s: %w", dl.ID, err)
	}
	return errDeferred
}

// relayAll sends to each recipient in turn, those never tried first. A
// rate limit, a stopping worker or a near deadline stops the round: the
// rest go back to their status and the task waits for the limit, or runs
// again at once (backing off instead when a recipient deferred, until
// retryAt).
func (d *Deliverer) relayAll(ctx context.Context, dl store.Delivery, rs []store.DeliveryRecipient, raw []byte,
	retryAt time.Time) error {
	triedFirst(rs)
	deferred := false
	for i, r := range rs {
		if i > 0 {
			if why := d.stopBetween(ctx); why != "" {
				d.release(ctx, dl, rs[i:])
				return keepDeferral(deferred, &cutShort{left: 1, why: why})
			}
		}
		out, err := d.relayOne(ctx, dl, r, raw)
		if err != nil { // held back, or the limits could not be read: not sent
			d.release(ctx, dl, rs[i:])
			return keepDeferral(deferred, err)
		}
		if err := d.keep(ctx, func(ctx context.Context) error {
			return d.deps.Store.RecordOutcomes(ctx, dl.ID, []store.Outcome{out}, retryAt)
		}); err != nil {
			return fmt.Errorf("record outcome of %s: %w", dl.ID, err)
		}
		deferred = deferred || out.Status == store.StatusDeferred
	}
	if deferred {
		return errDeferred
	}
	return nil
}

// triedFirst orders the recipients of an attempt: those never tried
// before first, the deferred ones after, each group in position order, so
// that a recipient that keeps deferring (or stalling) does not keep the
// others from their first try when a run is cut short.
func triedFirst(rs []store.DeliveryRecipient) {
	slices.SortStableFunc(rs, func(a, b store.DeliveryRecipient) int {
		return cmp.Compare(boolRank(a.Status == store.StatusDeferred), boolRank(b.Status == store.StatusDeferred))
	})
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// keepDeferral is the error of an attempt stopped early by err (a hold,
// a cut): when a recipient of this attempt already deferred, the deferral
// wins, so that the task backs off and counts the failure instead of
// trying that recipient again at once.
func keepDeferral(deferred bool, err error) error {
	if deferred {
		return errDeferred
	}
	return err
}

// stopBetween says why no further recipient's transaction may start in
// this attempt ("" when one may): the worker is stopping, or the task's
// deadline is near.
func (d *Deliverer) stopBetween(ctx context.Context) string {
	if stopping(ctx) {
		return "worker stopping"
	}
	if d.deadlineNear(ctx) {
		return "task deadline near"
	}
	return ""
}

// stoppingKey carries the worker's stopping channel in a task's context.
type stoppingKey struct{}

// withStopping gives ctx the worker's stopping channel.
func withStopping(ctx context.Context, ch <-chan struct{}) context.Context {
	return context.WithValue(ctx, stoppingKey{}, ch)
}

// stopping reports whether ctx's worker has begun to stop.
func stopping(ctx context.Context) bool {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// deadlineNear reports whether ctx's deadline is less than StartMargin
// away.
func (d *Deliverer) deadlineNear(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ok && time.Until(deadline) < d.cfg.StartMargin
}

// relayOne runs one SMTP transaction with the recipient's own VERP
// envelope and the message's id (for a provider relay's header, which ties
// that provider's notifications to the message), through the relays in
// failover order, each relay's rate limit taken just before it is tried,
// and turns its result into an outcome.
// Its error (a *heldBack, or the limiter's failure) means nothing was
// sent to the recipient and there is no outcome.
func (d *Deliverer) relayOne(ctx context.Context, dl store.Delivery, r store.DeliveryRecipient, raw []byte) (store.Outcome, error) {
	from, err := d.deps.ReturnPath.Address(dl.ID, r.Position)
	if err != nil {
		return outcomeOf(r, mta.Result{}, &mta.Error{Permanent: true, Text: "no return path: " + err.Error()}), nil
	}
	env := mta.Envelope{From: from, To: r.Email, MailgateID: dl.ID}
	gate := d.limitGate(dl, r)
	res, err := d.deps.Relay.DeliverGated(ctx, env, raw, gate.take)
	d.observe(ctx, r, res)
	if gate.err != nil {
		return store.Outcome{}, gate.err
	}
	out := outcomeOf(r, res, err)
	if err != nil {
		d.deps.Log.Info("delivery attempt", "message_id", dl.ID, "recipient", r.Position,
			"relay", res.Relay, "status", out.Status, "code", out.SMTPCode)
	}
	return out, nil
}

// limitGate takes the rate limits of one send as the relays are tried:
// before the first relay, its limits and the recipient-domain,
// sender-domain and key limits; before each relay failed over to, that
// relay's own. A relay is charged only for the sends it is tried with.
type limitGate struct {
	d    *Deliverer
	req  ratelimit.Request
	err  error // why take stopped the send
	used bool
}

func (d *Deliverer) limitGate(dl store.Delivery, r store.DeliveryRecipient) *limitGate {
	return &limitGate{d: d, req: ratelimit.Request{RecipientDomain: domainOf(r.Email),
		SenderDomain: dl.FromDomain, KeyID: dl.KeyID}}
}

// take is the mta.Gate: a short hold is waited out here (HoldWait), a
// longer one stops the send.
func (g *limitGate) take(ctx context.Context, relay string) error {
	req := ratelimit.Request{Relay: relay}
	if !g.used {
		req, g.used = g.req, true
		req.Relay = relay
	}
	cfg := g.d.cfg
	var waited time.Duration
	for {
		res, err := g.d.deps.Limits.Reserve(ctx, req)
		switch {
		case err != nil:
			g.err = fmt.Errorf("rate limit: %w", err)
			return g.err
		case res.Allowed:
			return nil
		case res.RetryAfter > cfg.HoldWait || waited+res.RetryAfter > 5*cfg.HoldWait:
			g.err = &heldBack{scope: res.Scope, after: res.RetryAfter}
			return g.err
		}
		wait := max(res.RetryAfter, time.Millisecond)
		if err := cfg.Sleep(ctx, wait); err != nil {
			g.err = err
			return err
		}
		waited += wait
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe counts every relay's answer in a send (a relay failed over from
// included) and slows down each relay that answered "too fast".
func (d *Deliverer) observe(ctx context.Context, r store.DeliveryRecipient, res mta.Result) {
	for _, a := range res.Attempts {
		status := outcomeOf(r, mta.Result{Relay: a.Relay}, a.Err).Status
		d.deps.Metrics.relayDuration.WithLabelValues(a.Relay).Observe(a.Duration.Seconds())
		d.deps.Metrics.attempts.WithLabelValues(a.Relay, status, mta.CodeClass(a.Err)).Inc()
		if isRateAnswer(a.Err) {
			if err := d.deps.Limits.SlowDown(ctx, a.Relay); err != nil {
				d.deps.Log.Warn("slow down relay", "relay", a.Relay, "err", err)
			}
		}
	}
}

// release puts recipients held back without an attempt back to the
// status they had.
func (d *Deliverer) release(ctx context.Context, dl store.Delivery, rs []store.DeliveryRecipient) {
	outs := make([]store.Outcome, len(rs))
	for i, r := range rs {
		prev := r.Status
		if prev == store.StatusSending || prev == store.StatusScheduled {
			prev = store.StatusQueued
		}
		outs[i] = store.Outcome{Position: r.Position, Email: r.Email, Status: prev}
	}
	if err := d.keep(ctx, func(ctx context.Context) error {
		return d.deps.Store.RecordOutcomes(ctx, dl.ID, outs, time.Time{})
	}); err != nil {
		d.deps.Log.Warn("release recipients", "message_id", dl.ID, "err", err)
	}
}

// keep runs write, a store write of what this attempt decided, until it
// succeeds, retrying while the database is unavailable (store.IsUnavailable)
// with a wait from a tenth of a second doubling to WriteRetryMax, for as
// long as ctx lasts. The recipients concerned stay sending meanwhile and
// nothing else sends them: the task's own retry would find them sending,
// flag them possibly duplicated and send them again. asynq (v0.26) keeps
// the task's lease while the handler runs, extending it every 5 seconds by
// 30 while this worker reaches Redis; ctx ends at the task's deadline
// (queue.Config.Timeout), when the lease is lost (Redis unreachable too for
// 30 seconds) or when a stopping worker's ShutdownTimeout runs out, and
// the write's error is then returned: only then does a later run find the
// recipients sending and flag them.
// Each try runs to its end even if ctx ends meanwhile, and writes are
// idempotent: an outcome changes only a recipient still sending, so a try
// whose COMMIT was lost after it committed makes the next one a no-op.
func (d *Deliverer) keep(ctx context.Context, write func(ctx context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		err := write(context.WithoutCancel(ctx))
		if err == nil || !store.IsUnavailable(err) {
			return err
		}
		d.deps.Log.Warn("database unavailable; retrying the write", "in", wait, "err", err)
		if serr := d.cfg.Sleep(ctx, wait); serr != nil {
			return err
		}
		wait = min(2*wait, d.cfg.WriteRetryMax)
	}
}

// expired reports whether the message has waited longer than MaxAge.
func (d *Deliverer) expired(dl store.Delivery) bool {
	from := dl.CreatedAt
	if dl.SendAt != nil && dl.SendAt.After(from) {
		from = *dl.SendAt
	}
	return d.cfg.Now().Sub(from) > d.cfg.MaxAge
}

// expire fails the pending recipients with reason "expired".
func (d *Deliverer) expire(ctx context.Context, dl store.Delivery, rs []store.DeliveryRecipient) error {
	data, _ := json.Marshal(map[string]string{"reason": "expired",
		"detail": fmt.Sprintf("not delivered within %s", d.cfg.MaxAge)})
	outs := make([]store.Outcome, len(rs))
	for i, r := range rs {
		outs[i] = store.Outcome{Position: r.Position, Email: r.Email, Status: store.StatusFailed,
			SMTPResponse: "expired: not delivered within " + d.cfg.MaxAge.String(),
			Event:        store.EventFailed, EventData: data}
	}
	return d.keep(ctx, func(ctx context.Context) error {
		return d.deps.Store.RecordOutcomes(ctx, dl.ID, outs, time.Time{})
	})
}

func domainOf(email string) string {
	at := strings.LastIndexByte(email, '@')
	return strings.ToLower(email[at+1:])
}
