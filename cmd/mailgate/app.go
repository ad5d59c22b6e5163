package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/config"
	"github.com/mailgate/mailgate/inbound"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// app holds what every role shares: configuration, logger, database,
// Redis and the metrics registry.
type app struct {
	cfg   config.Config
	log   *slog.Logger
	store *store.Store
	redis redis.UniversalClient
	queue *queue.Client
	reg   *prometheus.Registry
	// keyring holds the master keys (or, in development without
	// MAILGATE_MASTER_KEY, an ephemeral one).
	keyring *keyring.Keyring
	// inbound are the bounce, complaint and reply collectors, shared by
	// the poller and the API's provider feedback so that a process running
	// both counts into one set.
	inbound *inbound.Metrics
}

// loadConfig reads the configuration from the process environment.
func loadConfig() (config.Config, error) { return config.Load(os.Environ()) }

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the database and, unless disabled, migrates it.
func openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL})
	if err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		if err := st.MigrateUp(ctx); err != nil {
			st.Close()
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	return st, nil
}

// newApp opens everything a server role needs.
func newApp(ctx context.Context) (*app, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: newLogger(cfg, os.Stderr), reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.inbound = inbound.NewMetrics()
	if err := a.inbound.Register(a.reg); err != nil {
		return nil, err
	}
	if a.keyring, err = openKeyring(cfg, a.log); err != nil {
		return nil, err
	}
	if a.store, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	if a.redis, err = queue.OpenRedis(cfg.RedisURL); err != nil {
		a.close()
		return nil, err
	}
	if err := a.checkRedis(ctx); err != nil {
		a.close()
		return nil, err
	}
	a.queue = queue.New(queue.Config{}, a.redis)
	a.reg.MustRegister(
		worker.NewQueueCollector(a.redis, slices.Sorted(maps.Keys(queue.Queues()))),
		worker.NewSuppressionCollector(a.store),
		worker.NewDomainCollector(a.store))
	return a, nil
}

// openKeyring loads MAILGATE_MASTER_KEY. In development without one it
// makes an ephemeral key: DKIM keys sealed with it cannot be opened after a
// restart, and bounce tokens stop verifying, so it warns loudly.
func openKeyring(cfg config.Config, log *slog.Logger) (*keyring.Keyring, error) {
	if len(cfg.MasterKeys) > 0 {
		return keyring.New(cfg.MasterKeys)
	}
	if cfg.Production() {
		return nil, errors.New("production mode needs MAILGATE_MASTER_KEY")
	}
	log.Warn("MAILGATE_MASTER_KEY is not set: using an ephemeral master key; DKIM keys created now will not open after a restart (set it: openssl rand -base64 32)")
	return keyring.Generated()
}

// checkRedis refuses, in production, a Redis that may evict or lose
// tasks (maxmemory-policy other than noeviction; neither AOF nor RDB
// snapshots); in development it warns. It asks each node the client writes
// to: the server of a redis:// URL, the primary of a Sentinel setup (its
// replicas are not asked), and every node of a Cluster, replicas included
// (a replica becomes a primary on failover). A node that refuses CONFIG GET
// (the command renamed, or an ACL user without +config, as on many managed
// services) cannot be checked: it warns, naming what to verify by hand,
// and starts, in production too.
func (a *app) checkRedis(ctx context.Context) error {
	if err := a.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	var (
		mu       sync.Mutex
		problems []string
	)
	check := func(ctx context.Context, node string, c redis.Cmdable) error {
		found, denied, err := checkRedisNode(ctx, c)
		if err != nil {
			return fmt.Errorf("check %s: %w", node, err)
		}
		if denied != nil {
			a.log.Warn("could not check the settings of " + node + " (CONFIG GET refused: " + denied.Error() +
				"): verify by hand that maxmemory-policy is noeviction and that persistence is on (appendonly yes, or RDB snapshots: save)")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, f := range found {
			if node != "redis" { // a Cluster's node
				f = node + ": " + f
			}
			problems = append(problems, f)
		}
		return nil
	}
	var err error
	if cc, ok := a.redis.(*redis.ClusterClient); ok {
		err = cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			return check(ctx, "redis node "+node.Options().Addr, node)
		})
	} else {
		err = check(ctx, "redis", a.redis)
	}
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	msg := "redis may lose tasks: " + strings.Join(problems, "; ")
	if a.cfg.Production() {
		return fmt.Errorf("%s (refused in production mode)", msg)
	}
	a.log.Warn(msg + " (the reconciler re-enqueues from the database, but tasks may be delayed)")
	return nil
}

// checkRedisNode reads one node's eviction policy and persistence and
// returns what is wrong with them. denied is the node's error reply when
// it refused CONFIG GET (or answered without the setting); err is a
// failure to ask at all.
func checkRedisNode(ctx context.Context, c redis.Cmdable) (problems []string, denied, err error) {
	got := map[string]string{}
	for _, name := range []string{"maxmemory-policy", "appendonly", "save"} {
		v, err := c.ConfigGet(ctx, name).Result()
		var reply redis.Error
		if errors.As(err, &reply) {
			return nil, err, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("CONFIG GET %s: %w", name, err)
		}
		value, ok := v[name]
		if !ok {
			return nil, fmt.Errorf("CONFIG GET %s answered no value", name), nil
		}
		got[name] = value
	}
	if p := got["maxmemory-policy"]; p != "noeviction" {
		problems = append(problems, "maxmemory-policy is "+p+" (want noeviction)")
	}
	if got["appendonly"] != "yes" && got["save"] == "" {
		problems = append(problems, "persistence is off (neither AOF nor RDB snapshots)")
	}
	return problems, nil, nil
}

func (a *app) close() {
	if a.queue != nil {
		a.queue.Close()
	}
	if a.redis != nil {
		a.redis.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
}
