// Package worker runs mailgate's background work on asynq: the send task
// (deliver one message), the batch send task (first attempts at a batch
// request's messages, batch.go), the reconciler that heals the gap between a
// database commit and its enqueue and deletes what is past its retention
// age (retention.go), the periodic re-check of verified sender domains'
// DKIM records (domaincheck.go), and the rollup of the event log into the
// counts the console's overview reads (rollup.go). The handler's return value is the retry
// protocol: nil is done, a plain error retries on the schedule,
// asynq.SkipRetry ends the task, and a rate-limit wait is rescheduled
// without counting as a failure.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// Config configures the worker.
type Config struct {
	// Concurrency is the number of tasks run at once. A task mostly waits
	// (on the database, the rate limits, the relay), so it is well above
	// the number of cores. Default 64.
	Concurrency int
	// ShutdownTimeout is how long running tasks may finish on shutdown; it
	// is longer than a whole SMTP transaction under RFC 5321 §4.5.3.2's
	// timeouts (about 31 minutes at worst). Default 35 minutes.
	ShutdownTimeout time.Duration
	// ReconcileInterval is how often the reconciler runs. Default 1 minute.
	ReconcileInterval time.Duration
	// ReconcileGrace is how old a queued message must be, or how long
	// past due the next attempt of a started one (sending until its task's
	// deadline, deferred until its retry: store.MessagesOverdue), before
	// the reconciler enqueues it again: the API enqueues right after
	// commit, and asynq moves a due retry to the queue within
	// DelayedCheckInterval. Enqueueing a message whose task exists does
	// nothing (the task id is taken), so a live task is left alone.
	// Default 1 minute.
	ReconcileGrace time.Duration
	// ReconcileBatch bounds the messages one reconciler pass enqueues.
	// Default 1000.
	ReconcileBatch int
	// DelayedCheckInterval is how often asynq moves due scheduled and
	// retry tasks to the queue; it bounds how late a task held back by a
	// rate limit starts. Default 250 ms.
	DelayedCheckInterval time.Duration
	// TaskCheckInterval is how long an idle asynq processor waits before
	// it polls the queues again once they were found empty; it bounds how
	// late a newly enqueued task starts when the workers were idle. asynq's
	// own default (1 s) leaves most of the workers asleep under a steady
	// stream. Default 100 ms.
	TaskCheckInterval time.Duration
	// DomainRecheckInterval is how long after its last check a verified
	// (or failed) sender domain's DKIM record is looked up again
	// (domaincheck.go). Zero turns the re-check off; cmd passes
	// MAILGATE_DOMAIN_RECHECK_INTERVAL, whose default is 24 hours.
	DomainRecheckInterval time.Duration
	// DomainRecheckPoll is how often the worker looks for domains due for
	// a re-check. Default 1 minute.
	DomainRecheckPoll time.Duration
	// DomainRecheckBatch bounds the domains one pass looks for. Default 100.
	DomainRecheckBatch int
	// RollupInterval is how often the worker adds the new events into the
	// event counts the console's overview reads (rollup.go): the overview
	// lags the event log by about this plus store.Config.RollupLag.
	// Default 5 seconds.
	RollupInterval time.Duration
	// RollupBatch is how many events one rollup pass (one transaction)
	// takes. Default 5000.
	RollupBatch int
	// Retention is how long the reconciler keeps messages, their content
	// and events, inbound mail and idempotency records (retention.go).
	// Default: every age zero, nothing deleted; cmd sets the ages
	// MAILGATE_RETENTION_* give.
	Retention Retention
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 35 * time.Minute
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = time.Minute
	}
	if c.ReconcileGrace == 0 {
		c.ReconcileGrace = time.Minute
	}
	if c.ReconcileBatch == 0 {
		c.ReconcileBatch = 1000
	}
	if c.DelayedCheckInterval == 0 {
		c.DelayedCheckInterval = 250 * time.Millisecond
	}
	if c.TaskCheckInterval == 0 {
		c.TaskCheckInterval = 100 * time.Millisecond
	}
	if c.DomainRecheckPoll == 0 {
		c.DomainRecheckPoll = time.Minute
	}
	if c.DomainRecheckBatch == 0 {
		c.DomainRecheckBatch = 100
	}
	if c.RollupInterval == 0 {
		c.RollupInterval = 5 * time.Second
	}
	if c.RollupBatch == 0 {
		c.RollupBatch = 5000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Enqueuer is the part of queue.Client the worker uses.
type Enqueuer interface {
	EnqueueSend(ctx context.Context, messageID string, processAt time.Time) error
	EnqueueSendRetried(ctx context.Context, messageID string, processAt time.Time, retried int) error
	EnqueueSendBatch(ctx context.Context, batchID string, messageIDs []string) error
}

// Deps are the worker's collaborators.
type Deps struct {
	Store *store.Store
	Queue Enqueuer
	Redis redis.UniversalClient
	Log   *slog.Logger
	// Deliverer delivers messages; nil leaves send tasks to retry until a
	// worker with a relay configured takes them.
	Deliverer *Deliverer
	// Metrics, when set, gets the messages-by-status gauge refreshed by
	// the reconciler.
	Metrics *Metrics
	// Resolver is the DNS resolver of the domain re-check, the one verify
	// uses (dnscheck.NewResolver of MAILGATE_DNS_SERVER). Default: the
	// system resolver.
	Resolver dnscheck.Resolver
	// Publisher, when set, tells the API replicas that a re-check changed
	// a domain's status (queue.Revocations), so that they drop what they
	// cached about it at once instead of within their cache TTL.
	Publisher Publisher
}

// Worker runs the asynq server and the reconciler.
type Worker struct {
	cfg   Config
	deps  Deps
	slots chan struct{} // delivery slots (batch.go)
	// stopping is closed when Run begins to shut down: batch tasks
	// start no more messages, so shutdown waits only for what is sending.
	stopping chan struct{}
	stopOnce sync.Once
	// resolver is Deps.Resolver or the system resolver.
	resolver dnscheck.Resolver
	// retention deletes what is past its age, run by the reconciler.
	retention *retention
}

// errNoDelivery: this worker has no delivery configured.
var errNoDelivery = errors.New("no delivery configured in this worker")

// New returns a Worker.
func New(cfg Config, deps Deps) *Worker {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	w := &Worker{cfg: cfg, deps: deps, slots: make(chan struct{}, cfg.Concurrency),
		stopping: make(chan struct{}), resolver: deps.Resolver,
		retention: newRetention(cfg.Retention, deps.Store, cfg.Now)}
	if w.resolver == nil {
		w.resolver = dnscheck.NewResolver("")
	}
	return w
}

// Run processes tasks and reconciles until ctx is done.
func (w *Worker) Run(ctx context.Context) error {
	acfg := asynq.Config{
		Concurrency:     w.cfg.Concurrency,
		Queues:          queue.Queues(),
		ShutdownTimeout: w.cfg.ShutdownTimeout,
		Logger:          asynqLogger{w.deps.Log},
		LogLevel:        asynq.WarnLevel,
		IsFailure:       IsFailure,

		DelayedTaskCheckInterval: w.cfg.DelayedCheckInterval,
		TaskCheckInterval:        w.cfg.TaskCheckInterval,
	}
	if w.deps.Deliverer != nil {
		acfg.RetryDelayFunc = w.deps.Deliverer.RetryDelay
	}
	srv := asynq.NewServerFromRedisClient(w.deps.Redis, acfg)
	mux := asynq.NewServeMux()
	mux.HandleFunc(queue.TypeSend, w.handleSend)
	mux.HandleFunc(queue.TypeSendBatch, w.handleSendBatch)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	var loops sync.WaitGroup
	loops.Go(func() { w.recheckLoop(ctx) })
	loops.Go(func() { w.rollupLoop(ctx) })
	w.reconcileLoop(ctx)
	loops.Wait()
	w.stopOnce.Do(func() { close(w.stopping) }) // tasks start no more messages
	srv.Shutdown()
	return nil
}

// handleSend is the send task's handler.
func (w *Worker) handleSend(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseSendPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if w.deps.Deliverer == nil {
		return errNoDelivery
	}
	ctx = withStopping(ctx, w.stopping)
	roomy := w.roomy(ctx)
	if err := w.acquire(ctx); err != nil {
		return err
	}
	defer w.release()
	if why := w.stopStarting(ctx, !roomy); why != "" {
		return &cutShort{left: 1, why: why}
	}
	return w.deps.Deliverer.Deliver(ctx, p.MessageID, p.Retried)
}

func (w *Worker) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if err := w.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			w.deps.Log.Warn("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReconcileOnce enqueues the send task of every message that is still
// queued or scheduled past the grace period (a crash between commit and
// enqueue, or a lost Redis), or started and still sending or deferred
// past its next attempt's due time and the grace (its task or retry lost
// with Redis's data), and deletes what is older than its retention age
// (retention.go), logging the counts. Enqueue
// is idempotent (task id = message id, or the batch's task id for a
// message accepted in a batch), so a message that has its task is left
// alone.
func (w *Worker) ReconcileOnce(ctx context.Context) error {
	now := w.cfg.Now()
	refs, err := w.deps.Store.MessagesAwaitingTask(ctx, now.Add(-w.cfg.ReconcileGrace), w.cfg.ReconcileBatch)
	if err != nil {
		return fmt.Errorf("list messages awaiting a task: %w", err)
	}
	overdue, err := w.deps.Store.MessagesOverdue(ctx, now.Add(-w.cfg.ReconcileGrace), w.cfg.ReconcileBatch)
	if err != nil {
		return fmt.Errorf("list overdue messages: %w", err)
	}
	refs = append(refs, overdue...)
	var batches []string
	members := map[string][]string{}
	for _, r := range refs {
		if r.BatchID != "" && r.SendAt == nil && !r.Attempted {
			if members[r.BatchID] == nil {
				batches = append(batches, r.BatchID)
			}
			members[r.BatchID] = append(members[r.BatchID], r.ID)
			continue
		}
		var at time.Time
		if r.SendAt != nil {
			at = *r.SendAt
		}
		if err := w.deps.Queue.EnqueueSend(ctx, r.ID, at); err != nil {
			return fmt.Errorf("re-enqueue: %w", err)
		}
	}
	// A message of a batch never started gets its batch's task again:
	// while the batch task exists this does nothing. One started before
	// (held back by a rate limit, or its batch run cut short) gets its
	// own task above, which its batch task handed it over to: a batch
	// task made again would only find it attempted and hand it over.
	for _, b := range batches {
		if err := w.deps.Queue.EnqueueSendBatch(ctx, b, members[b]); err != nil {
			return fmt.Errorf("re-enqueue batch: %w", err)
		}
	}
	expired, err := w.retention.run(ctx)
	if !expired.empty() {
		w.deps.Log.Info("retention", "content", expired.Content, "messages", expired.Messages,
			"message_events", expired.MessageEvents, "events", expired.Events,
			"inbound", expired.Inbound, "idempotency", expired.Idempotency,
			"test_deliveries", expired.TestDeliveries, "event_counts", expired.EventCounts)
	}
	if err != nil {
		return err
	}
	return w.refreshGauges(ctx)
}

// refreshGauges sets the messages-by-status gauge from the database.
func (w *Worker) refreshGauges(ctx context.Context) error {
	if w.deps.Metrics == nil {
		return nil
	}
	counts, err := w.deps.Store.CountMessagesByStatus(ctx)
	if err != nil {
		return err
	}
	w.deps.Metrics.messages.Reset()
	for st, n := range counts {
		w.deps.Metrics.messages.WithLabelValues(st).Set(float64(n))
	}
	return nil
}

// asynqLogger routes asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
