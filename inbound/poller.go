package inbound

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/verp"
)

// Config tunes the poller. Zero fields take the defaults stated.
type Config struct {
	// SoftBounceLimit is how many soft bounces in a row (one per message)
	// suppress an address with reason soft_bounces. A confirmed delivery
	// (success DSN), a reply or an auto-reply from the address starts the
	// count over. Default 3.
	SoftBounceLimit int
	// BounceRules are operator classification rules (bounce.ParseRules),
	// which override the built-in ones. Default none.
	BounceRules []bounce.Rule
	// BatchSize is the most messages one Fetch returns. Default 50.
	BatchSize int
	// Concurrency is how many messages of a batch are classified and
	// committed at once (each in its own transaction). Default 4.
	Concurrency int
	// LockTTL is the expiry of a mailbox's Redis lock; the holder renews
	// it every LockTTL/3, and a crashed poller's mailbox is taken over
	// within LockTTL. Default 30s.
	LockTTL time.Duration
	// LockRetry is how often a poller waiting for a mailbox's lock tries
	// again. Default 5s.
	LockRetry time.Duration
	// RetryDelay is the pause after a mailbox or store error before the
	// mailbox is read again. Default 10s.
	RetryDelay time.Duration
	// KeepRawBytes is how much of each raw message is stored with its
	// inbound row (for debugging unmatched mail); the rest is dropped, the
	// size is kept. Negative keeps nothing. Default 64 KiB.
	KeepRawBytes int
	// LockPrefix starts each lock's Redis key, followed by the mailbox
	// name. Default "mailgate:inbound:lock:".
	LockPrefix string
	// Now is the clock stamping received_at. Default time.Now.
	Now func() time.Time
	// NewToken makes a lock token. Default 16 random bytes in hex.
	NewToken func() (string, error)
}

func (c Config) withDefaults() Config {
	if c.SoftBounceLimit <= 0 {
		c.SoftBounceLimit = store.DefaultSoftBounceLimit
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 50
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.LockTTL <= 0 {
		c.LockTTL = 30 * time.Second
	}
	if c.LockRetry <= 0 {
		c.LockRetry = 5 * time.Second
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 10 * time.Second
	}
	if c.KeepRawBytes == 0 {
		c.KeepRawBytes = 64 << 10
	}
	if c.LockPrefix == "" {
		c.LockPrefix = "mailgate:inbound:lock:"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewToken == nil {
		c.NewToken = randomToken
	}
	return c
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Deps are the poller's collaborators.
type Deps struct {
	// Store records inbound mail and its effects. Required.
	Store *store.Store
	// Redis holds the mailbox locks. Required.
	Redis redis.UniversalClient
	// VERP verifies bounce tokens. Required.
	VERP *verp.Codec
	// Sources are the mailboxes, each read by its own goroutine. The
	// poller closes them when Run returns.
	Sources []Source
	// Metrics are updated as mail is processed. Default: unregistered
	// collectors.
	Metrics *Metrics
	// Log receives progress and errors. Default: discarded.
	Log *slog.Logger
}

// Poller reads mailboxes and records what comes back.
type Poller struct {
	cfg     Config
	deps    Deps
	metrics *Metrics
	parser  *bounce.Parser
}

// New checks deps and builds a poller.
func New(cfg Config, deps Deps) (*Poller, error) {
	if deps.Store == nil || deps.Redis == nil || deps.VERP == nil {
		return nil, errors.New("inbound: store, redis and verp codec are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics()
	}
	return &Poller{cfg: cfg.withDefaults(), deps: deps, metrics: deps.Metrics, parser: bounce.New(bounce.Limits{}, cfg.BounceRules...)}, nil
}

// Run reads every mailbox until ctx ends, then closes the sources. It
// returns nil on cancellation: mailbox and store errors are logged and
// retried, not returned.
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, src := range p.deps.Sources {
		wg.Go(func() { p.runMailbox(ctx, src) })
	}
	wg.Wait()
	var errs []error
	for _, src := range p.deps.Sources {
		if err := src.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close mailbox %s: %w", src.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// runMailbox takes the mailbox's lock, reads it while holding the lock,
// and starts over after an error or a lost lock.
func (p *Poller) runMailbox(ctx context.Context, src Source) {
	name := src.Name()
	for {
		l, err := p.lock(ctx, name)
		if err != nil {
			return
		}
		p.deps.Log.Info("poller reading mailbox", "mailbox", name)
		err = p.hold(ctx, src, l)
		if rerr := l.release(); rerr != nil {
			p.deps.Log.Warn("poller unlock", "mailbox", name, "err", rerr)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.deps.Log.Error("poller mailbox error", "mailbox", name, "err", err)
			if !sleep(ctx, p.cfg.RetryDelay) {
				return
			}
		}
	}
}

// hold reads the mailbox until ctx ends, an error, or the lock is lost.
func (p *Poller) hold(ctx context.Context, src Source, l *mailboxLock) error {
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go l.renew(hctx, cancel)
	err := p.read(hctx, src)
	if cause := context.Cause(hctx); errors.Is(cause, errLockLost) {
		return cause
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// read drains the mailbox, then waits for more, until an error.
func (p *Poller) read(ctx context.Context, src Source) error {
	for {
		n, err := p.Batch(ctx, src)
		if err != nil {
			return err
		}
		if n >= p.cfg.BatchSize {
			continue
		}
		if err := src.Wait(ctx); err != nil {
			return fmt.Errorf("wait on mailbox %s: %w", src.Name(), err)
		}
	}
}

// Batch fetches up to BatchSize messages, processes them and marks them
// done, together with those the store already knew (recorded before a
// crash that came ahead of Done). It returns how many the mailbox handed
// over or skipped. A message whose processing fails is not marked done and
// ends the batch with the error; those before it are marked done.
func (p *Poller) Batch(ctx context.Context, src Source) (int, error) {
	name := src.Name()
	var mu sync.Mutex
	var done []string
	skip := func(id string) bool {
		seen, err := p.deps.Store.InboundSeen(ctx, name, id)
		if err != nil || !seen {
			// On a store error the message is fetched; recording it
			// again is harmless (a duplicate writes nothing).
			return false
		}
		mu.Lock()
		done = append(done, id)
		mu.Unlock()
		return true
	}
	msgs, err := src.Fetch(ctx, p.cfg.BatchSize, skip)
	if err != nil {
		return 0, fmt.Errorf("fetch from mailbox %s: %w", name, err)
	}
	n := len(done) + len(msgs)
	processed, perr := p.processAll(ctx, name, msgs)
	done = append(done, processed...)
	if len(done) > 0 {
		if err := src.Done(ctx, done); err != nil {
			return n, errors.Join(perr, fmt.Errorf("mark done in mailbox %s: %w", name, err))
		}
	}
	return n, perr
}

// processAll processes msgs, Concurrency at a time, and returns the ids
// of those committed; a failed one is left for the next batch.
func (p *Poller) processAll(ctx context.Context, name string, msgs []Message) ([]string, error) {
	var mu sync.Mutex
	var ids []string
	var errs []error
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, m := range msgs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := p.Process(ctx, name, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			p.deps.Log.Debug("inbound processed", "mailbox", name, "id", m.ID, "kind", res.Kind,
				"matched", res.Matched, "message_id", res.MessageID, "authenticated", res.Authenticated,
				"duplicate", res.Duplicate)
			ids = append(ids, m.ID)
		}()
	}
	wg.Wait()
	return ids, errors.Join(errs...)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
