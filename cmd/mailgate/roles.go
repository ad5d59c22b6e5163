package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/config"
	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/inbound"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/webhook"
	"github.com/mailgate/mailgate/worker"
)

func serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run every role in one process (API, worker, poller)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runRoles(cmd.Context(), true, true, true) },
	}
}

func apiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Run the HTTP API only",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runRoles(cmd.Context(), true, false, false) },
	}
}

func workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the asynq workers (send, reconciler) and the webhook dispatcher",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runRoles(cmd.Context(), false, true, false) },
	}
}

func pollerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "poller",
		Short: "Run the bounce/reply mailbox poller",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runRoles(cmd.Context(), false, false, true) },
	}
}

// runRoles runs the chosen roles until ctx is done. With the API, its port
// serves /metrics for every role; without it, MAILGATE_METRICS_LISTEN does.
func runRoles(ctx context.Context, withAPI, withWorker, withPoller bool) error {
	a, err := newApp(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	g, ctx := errgroup.WithContext(ctx)
	if withAPI {
		srv, err := a.apiServer()
		if err != nil {
			return err
		}
		a.log.Info("api listening", "addr", a.cfg.Listen)
		g.Go(func() error { return srv.Run(ctx) })
	} else {
		g.Go(func() error { return a.runMetricsServer(ctx) })
	}
	if withWorker {
		keys := worker.NewStoreKeys(a.store, a.keyring, 0, nil)
		w, err := a.worker(keys)
		if err != nil {
			return err
		}
		g.Go(func() error { return w.Run(ctx) })
		g.Go(func() error { return a.listenDomainChanges(ctx, keys) })
		d, err := a.webhookDispatcher()
		if err != nil {
			return err
		}
		g.Go(func() error { return d.Run(ctx) })
	}
	if withPoller {
		g.Go(func() error { return a.runPoller(ctx) })
	}
	return g.Wait()
}

func (a *app) apiServer() (*api.Server, error) {
	hooks, err := a.webhookClient()
	if err != nil {
		return nil, err
	}
	limiter := ratelimit.New(ratelimit.Config{}, a.redis)
	con, err := a.consoleFactory(limiter)
	if err != nil {
		return nil, err
	}
	return api.New(api.Config{
		Listen:               a.cfg.Listen,
		RateLimit:            a.cfg.APIRateLimit,
		AllowedSenderDomains: a.cfg.AllowedSenderDomains,
		Production:           a.cfg.Production(),
		Limits:               api.Limits{MaxRecipients: a.cfg.MaxRecipients, MaxMessageBytes: a.cfg.MaxMessageBytes},
		DNSServer:            a.cfg.DNSServer,
		ReturnPathDomain:     a.cfg.ReturnPathDomain,
		RelayHosts:           a.relayHosts(),
	}, api.Deps{
		Keyring:     a.keyring,
		Store:       a.store,
		Queue:       a.queue,
		Limiter:     limiter,
		Registry:    a.reg,
		Gatherer:    a.reg,
		Log:         a.log,
		Ready:       []api.ReadyCheck{{Name: "redis", Check: a.pingRedis}},
		Revocations: queue.NewRevocations(a.redis),
		Webhooks:    hooks,
		Feedback: inbound.NewFeedback(inbound.FeedbackConfig{SoftBounceLimit: a.cfg.SoftBounceLimit}, a.store,
			a.inbound),
		Console: con,
	})
}

func (a *app) pingRedis(ctx context.Context) error { return a.redis.Ping(ctx).Err() }

// worker assembles the send worker; keys are its DKIM keys, kept in step
// with the API's changes by listenDomainChanges.
func (a *app) worker(keys *worker.StoreKeys) (*worker.Worker, error) {
	metrics := worker.NewMetrics()
	if err := metrics.Register(a.reg); err != nil {
		return nil, err
	}
	d, err := a.deliverer(metrics, keys)
	if err != nil {
		return nil, err
	}
	if d == nil {
		a.log.Warn("MAILGATE_RELAYS is empty: messages are accepted and queued but not sent")
	}
	return worker.New(worker.Config{
		Concurrency:           a.cfg.WorkerConcurrency,
		ReconcileInterval:     a.cfg.ReconcileInterval,
		ReconcileGrace:        a.cfg.ReconcileGrace,
		DomainRecheckInterval: a.cfg.DomainRecheckInterval,
		Retention:             retention(a.cfg),
	}, worker.Deps{Store: a.store, Queue: a.queue, Redis: a.redis, Log: a.log, Deliverer: d, Metrics: metrics,
		Resolver: dnscheck.NewResolver(a.cfg.DNSServer), Publisher: queue.NewRevocations(a.redis)}), nil
}

// listenDomainChanges evicts from keys each domain the API registers,
// deletes or re-keys, as it broadcasts them over Redis, until ctx ends;
// go-redis resubscribes after a reconnect, and each subscription empties
// the cache. Should the listener stop, the cache's TTL still bounds how
// stale a key gets, so the worker goes on.
func (a *app) listenDomainChanges(ctx context.Context, keys *worker.StoreKeys) error {
	err := keys.Listen(ctx, queue.NewRevocations(a.redis), func() {
		a.log.Info("listening for domain changes; DKIM key cache emptied")
	})
	if err != nil {
		a.log.Warn("domain change listener stopped; DKIM keys are cached for at most the TTL", "err", err)
	}
	return nil
}

// webhookClient is the webhook poster (and URL checker) the
// configuration describes.
func (a *app) webhookClient() (*webhook.Client, error) {
	nets := make([]netip.Prefix, 0, len(a.cfg.WebhookAllowedNetworks))
	for _, n := range a.cfg.WebhookAllowedNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("MAILGATE_WEBHOOK_ALLOWED_NETWORKS: %w", err)
		}
		nets = append(nets, p)
	}
	return webhook.New(webhook.Config{AllowedNetworks: nets, AllowHTTP: a.cfg.WebhookAllowHTTP,
		MaxResponseBody: 1 << 10}), nil
}

// webhookDispatcher delivers webhook events from the database.
func (a *app) webhookDispatcher() (*worker.Dispatcher, error) {
	client, err := a.webhookClient()
	if err != nil {
		return nil, err
	}
	metrics := worker.NewWebhookMetrics()
	if err := metrics.Register(a.reg); err != nil {
		return nil, err
	}
	return worker.NewDispatcher(worker.WebhookConfig{}, worker.WebhookDeps{Store: a.store, Client: client,
		Opener: a.keyring, Metrics: metrics, Log: a.log}), nil
}

// runMetricsServer serves /healthz, /readyz and /metrics for the worker
// and poller roles on MAILGATE_METRICS_LISTEN.
func (a *app) runMetricsServer(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	srv := &http.Server{Addr: a.cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	a.log.Info("metrics listening", "addr", a.cfg.MetricsListen)
	select {
	case err := <-errc:
		return fmt.Errorf("metrics listen %s: %w", a.cfg.MetricsListen, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok", "redis": "ok"}
	code, status := http.StatusOK, "ok"
	if err := a.store.Ping(ctx); err != nil {
		checks["database"], code, status = "unavailable", http.StatusServiceUnavailable, "unavailable"
	}
	if err := a.pingRedis(ctx); err != nil {
		checks["redis"], code, status = "unavailable", http.StatusServiceUnavailable, "unavailable"
	}
	writeHealth(w, code, map[string]any{"status": status, "checks": checks})
}

func writeHealth(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// retention is the worker's retention from the configured ages.
func retention(cfg config.Config) worker.Retention {
	return worker.Retention{Content: cfg.RetentionContent, Messages: cfg.RetentionMessages,
		Events: cfg.RetentionEvents, Inbound: cfg.RetentionInbound, Idempotency: cfg.RetentionIdempotency}
}
