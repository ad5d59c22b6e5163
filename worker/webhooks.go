package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/webhook"
)

// Webhook metrics, updated by the Dispatcher.
var (
	// webhookResults are the values of the result label of
	// mailgate_webhook_deliveries_total, the statuses an attempt leaves a
	// delivery in: delivered (2xx), failed (the attempt failed; another is
	// scheduled, or waits for its disabled endpoint), exhausted (the last
	// attempt of the schedule failed).
	// deferred (not attempted: the endpoint's signing secret would not
	// open, so the delivery waits, uncounted, for the right master key).
	webhookResults = []string{"delivered", "failed", "exhausted", "deferred"}
)

// WebhookMetrics are the dispatcher's collectors.
type WebhookMetrics struct {
	// deliveries counts attempts by result (webhookResults).
	deliveries *prometheus.CounterVec
	// duration times one attempt, from sending to the end of the answer.
	duration prometheus.Histogram
	// backlog is the number of deliveries neither delivered nor
	// exhausted.
	backlog prometheus.Gauge
	// disabled is the number of disabled endpoints.
	disabled prometheus.Gauge
}

// NewWebhookMetrics makes the collectors, every result at zero.
func NewWebhookMetrics() *WebhookMetrics {
	m := &WebhookMetrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result (delivered, failed, exhausted, deferred).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailgate_webhook_delivery_duration_seconds",
			Help:    "Duration of one webhook delivery attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailgate_webhook_backlog",
			Help: "Webhook deliveries neither delivered nor exhausted.",
		}),
		disabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailgate_webhook_endpoints_disabled",
			Help: "Webhook endpoints that are disabled.",
		}),
	}
	for _, r := range webhookResults {
		m.deliveries.WithLabelValues(r)
	}
	return m
}

// Register adds the collectors to reg.
func (m *WebhookMetrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.backlog, m.disabled} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return nil
}

// DefaultWebhookSchedule is the Standard Webhooks retry schedule: the
// delays before the second to tenth attempts (about 3 days in all).
var DefaultWebhookSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}

// WebhookConfig configures a Dispatcher.
type WebhookConfig struct {
	// PerEndpoint bounds the attempts in flight to one endpoint from this
	// worker, so a slow endpoint holds only its own deliveries. Default 16.
	PerEndpoint int
	// PollInterval is how often the database is asked for due
	// deliveries when none finished meanwhile. Default 1 second.
	PollInterval time.Duration
	// Lease is how long a claimed delivery is this worker's: should the
	// worker die, it is due again after that. It is well above the
	// client's timeout. Default 1 minute.
	Lease time.Duration
	// Schedule are the delays between failed attempts; after the last,
	// the delivery is exhausted. Default DefaultWebhookSchedule.
	Schedule []time.Duration
	// Jitter spreads a delay (default: ±10 %, at random).
	Jitter func(time.Duration) time.Duration
	// MaxRetryAfter caps the wait a Retry-After header asks for. Default
	// 24 hours.
	MaxRetryAfter time.Duration
	// DisableAfter is how long an endpoint may fail without a delivered
	// attempt before it is disabled. Default 5 days.
	DisableAfter time.Duration
	// GaugeInterval is how often the backlog and disabled-endpoint gauges
	// are refreshed. Default 15 seconds.
	GaugeInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.PerEndpoint == 0 {
		c.PerEndpoint = 16
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.Schedule == nil {
		c.Schedule = DefaultWebhookSchedule
	}
	if c.Jitter == nil {
		c.Jitter = func(d time.Duration) time.Duration {
			return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
		}
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 24 * time.Hour
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.GaugeInterval == 0 {
		c.GaugeInterval = 15 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Poster posts one delivery (webhook.Client).
type Poster interface {
	Post(ctx context.Context, url string, secrets []string, id string, ts time.Time, body []byte) webhook.Result
}

// WebhookDeps are a Dispatcher's collaborators.
type WebhookDeps struct {
	Store  *store.Store
	Client Poster
	// Opener opens the endpoints' sealed secrets.
	Opener  Opener
	Metrics *WebhookMetrics
	Log     *slog.Logger
}

// Dispatcher delivers webhook events. The database is its queue: it
// claims due deliveries per endpoint with a lease, posts them, and
// records each outcome, so nothing rests in Redis or in memory only.
// Each endpoint has at most PerEndpoint attempts in flight; the others'
// deliveries go on meanwhile, and mail delivery does not wait on any.
type Dispatcher struct {
	cfg  WebhookConfig
	deps WebhookDeps
	// wake is signalled when an attempt ends, so the endpoint's next
	// deliveries are claimed without waiting for the poll.
	wake chan struct{}

	mu       sync.Mutex
	inFlight map[string]int
}

// NewDispatcher returns a Dispatcher.
func NewDispatcher(cfg WebhookConfig, deps WebhookDeps) *Dispatcher {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewWebhookMetrics()
	}
	return &Dispatcher{cfg: cfg.withDefaults(), deps: deps, wake: make(chan struct{}, 1), inFlight: map[string]int{}}
}

// Run dispatches until ctx is done, then waits for the attempts in flight.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	var gaugesAt time.Time
	var due []string
	refresh := true
	for {
		var err error
		if refresh {
			due, err = d.deps.Store.DueWebhookEndpoints(ctx, d.cfg.Now())
		}
		if err == nil {
			err = d.pass(ctx, &wg, due)
		}
		if err != nil && ctx.Err() == nil {
			d.deps.Log.Warn("webhook dispatch", "err", err)
		}
		if now := time.Now(); now.Sub(gaugesAt) >= d.cfg.GaugeInterval {
			gaugesAt = now
			d.refreshGauges(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			refresh = true
		case <-d.wake:
			// The endpoints that had deliveries due at the last poll:
			// a busy endpoint's next deliveries cost one claim, without
			// a read first; one with none left costs an empty claim
			// until the next poll drops it.
			refresh = false
		}
	}
}

// RunOnce claims every endpoint's due deliveries (up to PerEndpoint each)
// and waits until their attempts are recorded. Tests drive a fake clock
// with it.
func (d *Dispatcher) RunOnce(ctx context.Context) error {
	due, err := d.deps.Store.DueWebhookEndpoints(ctx, d.cfg.Now())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	err = d.pass(ctx, &wg, due)
	wg.Wait()
	return err
}

// pass claims, for each endpoint of due with room, its due deliveries and
// starts their attempts. An endpoint with no room (its attempts in flight
// at PerEndpoint, or above half of it) costs the database nothing. The
// endpoint's URL and secrets are those read with the claim, so a change
// (or a disabling, or a deletion: nothing is claimed then) applies from
// the next attempt.
func (d *Dispatcher) pass(ctx context.Context, wg *sync.WaitGroup, due []string) error {
	var errs []error
	for _, id := range due {
		room := d.reserve(id, d.cfg.PerEndpoint)
		if room == 0 {
			continue
		}
		now := d.cfg.Now()
		claim, err := d.deps.Store.ClaimWebhookDeliveries(ctx, id, room, now, now.Add(d.cfg.Lease))
		d.release(id, room-len(claim.Deliveries), false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(claim.Deliveries) == 0 {
			continue
		}
		ep := claim.Endpoint
		secrets, err := d.secrets(ep, now)
		for _, c := range claim.Deliveries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.attempt(ctx, ep, secrets, err, c, func() { d.release(ep.ID, 1, true) })
			}()
		}
	}
	return errors.Join(errs...)
}

// reserve takes up to n of the endpoint's in-flight slots and returns how
// many it took: none while more than half are taken, so that a busy
// endpoint's deliveries are claimed several per transaction rather than
// one as each attempt ends.
func (d *Dispatcher) reserve(endpointID string, n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	busy := d.inFlight[endpointID]
	room := min(n, d.cfg.PerEndpoint-busy)
	if room <= 0 || busy > 0 && room < d.cfg.PerEndpoint/2 {
		return 0
	}
	d.inFlight[endpointID] += room
	return room
}

// release gives n slots back; after an attempt (wake) it wakes the
// dispatch loop to claim the endpoint's next deliveries. Slots reserved
// but not claimed wake nothing: the loop would spin on an empty queue.
func (d *Dispatcher) release(endpointID string, n int, wake bool) {
	if n == 0 {
		return
	}
	d.mu.Lock()
	d.inFlight[endpointID] -= n
	if d.inFlight[endpointID] <= 0 {
		delete(d.inFlight, endpointID)
	}
	d.mu.Unlock()
	if !wake {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// secrets opens the endpoint's current secret and, until it expires, the
// previous one.
func (d *Dispatcher) secrets(ep store.WebhookEndpoint, now time.Time) ([]string, error) {
	cur, err := d.deps.Opener.Open(ep.SecretSealed, webhook.SealAAD(ep.ID))
	if err != nil {
		return nil, fmt.Errorf("open secret of webhook %s: %w", ep.ID, err)
	}
	out := []string{string(cur)}
	if len(ep.PreviousSecretSealed) > 0 && ep.PreviousSecretExpiresAt != nil && now.Before(*ep.PreviousSecretExpiresAt) {
		prev, err := d.deps.Opener.Open(ep.PreviousSecretSealed, webhook.SealAAD(ep.ID))
		if err != nil {
			return nil, fmt.Errorf("open previous secret of webhook %s: %w", ep.ID, err)
		}
		out = append(out, string(prev))
	}
	return out, nil
}

// maxResponseBody is how much of an answer the delivery log keeps.
const maxResponseBody = 1 << 10

// attempt posts one claimed delivery, calls posted (which frees the
// endpoint's slot: the next delivery's POST need not wait for this one's
// commit, and its lease keeps it from being claimed again meanwhile), and
// records the outcome. A secret that does not open (secretErr: the master
// key is not the one it was sealed with) is no attempt: nothing is posted,
// and the delivery is deferred by the schedule's first delay without
// counting, so a wrong key neither exhausts deliveries nor disables
// endpoints.
func (d *Dispatcher) attempt(ctx context.Context, ep store.WebhookEndpoint, secrets []string, secretErr error,
	c store.ClaimedDelivery, posted func()) {
	if secretErr != nil {
		posted()
		d.deferUnsigned(ctx, ep, c, secretErr)
		return
	}
	body, err := payloadBody(c)
	var res webhook.Result
	switch {
	case err != nil:
		res = webhook.Result{Err: err}
	default:
		res = d.deps.Client.Post(ctx, ep.URL, secrets, c.ID, d.cfg.Now(), body)
		d.deps.Metrics.duration.Observe(res.Latency.Seconds())
	}
	posted()
	if ctx.Err() != nil {
		return // shutting down: the lease makes the delivery due again
	}
	a := d.outcome(ep, c, res)
	d.deps.Metrics.deliveries.WithLabelValues(a.Status).Inc()
	recorded, err := d.deps.Store.RecordWebhookAttempt(ctx, a)
	if err != nil {
		d.deps.Log.Warn("record webhook attempt; the lease makes it due again", "webhook", ep.ID,
			"delivery", c.ID, "err", err)
	} else if !recorded {
		// A retry or a lapsed lease made the delivery due again while
		// this attempt was in flight: the later attempt's outcome counts.
		d.deps.Log.Info("webhook attempt outcome dropped: its lease was lost", "webhook", ep.ID,
			"delivery", c.ID, "status", a.Status)
	}
}

// deferUnsigned reschedules a delivery whose endpoint's secret would not
// open, without counting an attempt; the log names the endpoint and the
// delivery, never a secret.
func (d *Dispatcher) deferUnsigned(ctx context.Context, ep store.WebhookEndpoint, c store.ClaimedDelivery, secretErr error) {
	d.deps.Metrics.deliveries.WithLabelValues("deferred").Inc()
	d.deps.Log.Warn("webhook secret does not open with the master key; delivery deferred", "webhook", ep.ID,
		"delivery", c.ID, "err", secretErr)
	if ctx.Err() != nil {
		return
	}
	now := d.cfg.Now()
	next := now.Add(d.cfg.Jitter(d.cfg.Schedule[0]))
	_, err := d.deps.Store.RecordWebhookAttempt(ctx, store.WebhookAttempt{DeliveryID: c.ID, EndpointID: ep.ID,
		Lease: c.Lease, Deferred: true, NextAttemptAt: &next, Error: "the webhook's signing secret could not be opened",
		At: now})
	if err != nil {
		d.deps.Log.Warn("record deferred webhook delivery; the lease makes it due again", "webhook", ep.ID,
			"delivery", c.ID, "err", err)
	}
}

// payloadBody is the JSON body of a delivery: a test delivery's stored
// payload, or the event as {type, timestamp, data}.
func payloadBody(c store.ClaimedDelivery) ([]byte, error) {
	if c.Event == nil {
		return c.Payload, nil
	}
	data, err := c.Event.WebhookData()
	if err != nil {
		return nil, err
	}
	return json.Marshal(webhook.Payload{Type: c.Event.Type, Timestamp: c.Event.CreatedAt, Data: data})
}

// outcome decides what an attempt's result means for the delivery and its
// endpoint: 2xx delivered; 429 or 503 with Retry-After deferred to when
// it asks (not counted toward the schedule); 410 disables the endpoint;
// any other failure retries on the schedule, then is exhausted. An
// endpoint failing for DisableAfter is disabled.
func (d *Dispatcher) outcome(ep store.WebhookEndpoint, c store.ClaimedDelivery, res webhook.Result) store.WebhookAttempt {
	now := d.cfg.Now()
	body := res.Body
	if len(body) > maxResponseBody {
		body = truncateUTF8(body, maxResponseBody)
	}
	a := store.WebhookAttempt{DeliveryID: c.ID, EndpointID: ep.ID, Lease: c.Lease, ResponseCode: res.StatusCode,
		ResponseBody: body, Latency: res.Latency, At: now, Counted: true}
	if res.OK() {
		a.Status = store.DeliveryDelivered
		return a
	}
	a.Error = res.Err.Error()
	a.Status = store.DeliveryFailed
	if wait, ok := d.retryAfter(res, now); ok {
		a.Counted = false
		next := now.Add(wait)
		a.NextAttemptAt = &next
	} else if n := c.Attempts + 1; n > len(d.cfg.Schedule) {
		a.Status = store.DeliveryExhausted
	} else {
		next := now.Add(d.cfg.Jitter(d.cfg.Schedule[n-1]))
		a.NextAttemptAt = &next
	}
	if res.StatusCode == http.StatusGone {
		a.DisableReason = "the endpoint answered 410 Gone"
	}
	// Whether the endpoint has failed for DisableAfter is decided by the
	// store when the attempt is written, from failing_since as it is then;
	// a delivery that would be exhausted is kept failed, due when the
	// endpoint is enabled again.
	a.DisableAfter = d.cfg.DisableAfter
	return a
}

// retryAfter is the wait a 429 or 503 answer asks for in its Retry-After
// header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date), at least one
// second and at most MaxRetryAfter.
func (d *Dispatcher) retryAfter(res webhook.Result, now time.Time) (time.Duration, bool) {
	if res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable || res.RetryAfter == "" {
		return 0, false
	}
	var wait time.Duration
	if secs, err := strconv.ParseInt(res.RetryAfter, 10, 64); err == nil && secs >= 0 {
		wait = time.Duration(min(secs, int64(d.cfg.MaxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(res.RetryAfter); err == nil {
		wait = at.Sub(now)
	} else {
		return 0, false
	}
	return min(max(wait, time.Second), d.cfg.MaxRetryAfter), true
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// refreshGauges sets the backlog and disabled-endpoint gauges.
func (d *Dispatcher) refreshGauges(ctx context.Context) {
	g, err := d.deps.Store.WebhookGauges(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.deps.Log.Warn("webhook gauges", "err", err)
		}
		return
	}
	d.deps.Metrics.backlog.Set(float64(g.Backlog))
	d.deps.Metrics.disabled.Set(float64(g.DisabledEndpoints))
}
