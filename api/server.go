// Package api is mailgate's HTTP front door: authentication, scopes and
// per-key rate limits, request validation against openapi.yaml, the
// idempotent send path (persist, then enqueue, then answer 202) and the
// read, suppression, key and project routes. It owns the mapping of
// errors to application/problem+json (problem.go) and nothing below it
// knows about HTTP. It does not send mail: the worker does.
package api

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	mailgate "github.com/mailgate/mailgate"
	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/webhook"
)

// Config configures the API server.
type Config struct {
	// Listen is the address to serve on. Default "127.0.0.1:8080".
	Listen string
	// Limits are the send limits. Zero fields take their defaults.
	Limits Limits
	// RateLimit is the number of requests per second each API key may make,
	// shared across replicas through Redis; 0 turns the limit off.
	RateLimit int
	// AllowedSenderDomains may send without being registered (lower case).
	AllowedSenderDomains []string
	// Production is production mode (MAILGATE_ENV=production): a send
	// from a registered domain that is not verified is refused (422); in
	// development it is accepted, signed, with a warning. Default false.
	Production bool
	// DNSServer is the resolver ("host:port") domain verification asks
	// (MAILGATE_DNS_SERVER). Default "": the system resolver.
	DNSServer string
	// ReturnPathDomain is the domain of the VERP envelope sender
	// (MAILGATE_RETURN_PATH_DOMAIN); when set, a domain's dns_records
	// include its MX. Default "": no return-path record.
	ReturnPathDomain string
	// RelayHosts are the host names of the upstream relays (from
	// MAILGATE_RELAYS), for the SPF hint and the return-path MX. Default
	// none: no SPF hint.
	RelayHosts []string
	// BodyLimit bounds a request body in bytes. Default 40 MiB, enough
	// for 25 MB of attachments in base64.
	BodyLimit int64
	// IdempotencyStale is how long an unfinished Idempotency-Key blocks
	// others (409) before it may be taken over. Default 1 minute.
	IdempotencyStale time.Duration
	// ReadyTimeout bounds each readiness check. Default 2 seconds.
	ReadyTimeout time.Duration
	// KeyCacheTTL is how long a key, or the verdict that a project may
	// send from a domain, read from the database is reused when
	// Deps.Revocations is set.
	// Default 5 seconds.
	KeyCacheTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// NewID makes message ids. Default UUIDv7.
	NewID func() string
}

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	c.Limits = c.Limits.WithDefaults()
	if c.BodyLimit == 0 {
		c.BodyLimit = 40 << 20
	}
	if c.IdempotencyStale == 0 {
		c.IdempotencyStale = time.Minute
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = 5 * time.Second
	}
	if c.NewID == nil {
		c.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	return c
}

// Enqueuer schedules send tasks (queue.Client).
type Enqueuer interface {
	EnqueueSend(ctx context.Context, messageID string, processAt time.Time) error
	// EnqueueSendBatch schedules one task for the first attempt at every
	// message of a batch request (store.BatchID names it).
	EnqueueSendBatch(ctx context.Context, batchID string, messageIDs []string) error
	CancelSend(messageID string) error
}

// ReadyCheck is one dependency /readyz checks, such as Redis.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// Deps are the API's collaborators.
type Deps struct {
	Store   *store.Store
	Queue   Enqueuer
	Limiter *ratelimit.Limiter
	// Keyring seals DKIM private keys (MAILGATE_MASTER_KEY, or a generated
	// key in development). Without it, creating domains fails.
	Keyring *keyring.Keyring
	// Registry receives the API's metrics; /metrics serves Gatherer.
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	Log      *slog.Logger
	// Ready are checked by /readyz besides the database.
	Ready []ReadyCheck
	// Revocations, when set, lets the server cache keys (see keyCache).
	Revocations Revocations
	// Webhooks checks webhook endpoint URLs against the SSRF guard
	// (MAILGATE_WEBHOOK_ALLOWED_NETWORKS, MAILGATE_WEBHOOK_ALLOW_HTTP).
	// Default a client with the guard's defaults: https to public
	// addresses only.
	Webhooks *webhook.Client
	// Feedback applies verified provider notifications
	// (inbound.Feedback). Without it the receiving route answers 503.
	Feedback FeedbackApplier
	// FeedbackFetch fetches the URLs an SNS message names (its signing
	// certificate, its SubscribeURL), already checked to be https on an
	// SNS host, and the issuer certificate a signing certificate names
	// (checked by feedback.CheckIssuerURL). Default Webhooks'
	// SSRF-guarded client (for an http issuer URL, the same guard allowing
	// http); tests inject one.
	FeedbackFetch feedback.CertFetcher
	// FeedbackRoots are the roots an SNS signing certificate must chain
	// to. Default nil: the system's; tests inject their own.
	FeedbackRoots *x509.CertPool
	// FeedbackTokens remembers Mailgun's one-time tokens for every replica
	// (feedback.RedisTokens on the Redis they share); required with
	// Feedback. While it cannot answer, a Mailgun notification is a 503.
	FeedbackTokens feedback.TokenClaimer
	// Console builds the web console served under /console (package
	// console, wired by cmd/mailgate). Default none: no /console route.
	Console ConsoleFactory
}

// Server is the HTTP API.
type Server struct {
	cfg     Config
	deps    Deps
	echo    *echo.Echo
	metrics *metrics
	allowed map[string]bool
	// projectNames caches project id → name for metric labels.
	projectNames sync.Map
	// domains caches the sender domains projects may send from; nil without
	// Deps.Revocations.
	domains *domainCache
	// keys caches API keys; nil without Deps.Revocations.
	keys *keyCache
	// webhooks is Deps.Webhooks or its default.
	webhooks *webhook.Client
	// snsCerts caches SNS signing certificates and their issuers by URL.
	snsCerts *feedback.CertCache
	// issuers fetches the http issuer certificates of SNS signing
	// certificates: the webhook guard, allowing http.
	issuers *webhook.Client
	// validate checks a request against openapi.yaml (openAPIValidator);
	// requireScope runs it after the scope check.
	validate echo.MiddlewareFunc
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, metrics: m, allowed: map[string]bool{}, webhooks: deps.Webhooks}
	if s.webhooks == nil {
		s.webhooks = webhook.New(webhook.Config{})
	}
	if deps.Feedback != nil && deps.FeedbackTokens == nil {
		return nil, errors.New("api: Deps.FeedbackTokens is required with Deps.Feedback")
	}
	s.snsCerts, s.issuers = &feedback.CertCache{}, s.webhooks.AllowingHTTP()
	if deps.Revocations != nil {
		s.keys = newKeyCache(cfg.KeyCacheTTL, time.Now)
		s.domains = newDomainCache(cfg.KeyCacheTTL, time.Now)
	}
	for _, d := range cfg.AllowedSenderDomains {
		s.allowed[d] = true
	}
	if err := s.routes(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler is the server as an http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{
		Addr:              s.cfg.Listen,
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	ready := make(chan struct{})
	go func() {
		if err := s.Listen(ctx, ready); err != nil {
			s.deps.Log.Warn("key revocation listener stopped; keys are cached for at most the TTL", "err", err)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("api listen %s: %w", s.cfg.Listen, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api shutdown: %w", err)
	}
	return nil
}

func (s *Server) routes() error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.deps.Log, s.metrics)
	e.Use(middleware.Recover())
	e.Use(middleware.BodyLimit(fmt.Sprintf("%dB", s.cfg.BodyLimit)))
	if err := s.useHTTPMetrics(e); err != nil {
		return err
	}
	spec, router, err := loadSpec(mailgate.OpenAPI)
	if err != nil {
		return fmt.Errorf("load openapi.yaml: %w", err)
	}
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metricsHandler())
	s.validate = openAPIValidator(spec, router, map[string]func([]byte) []FieldError{
		"sendMessage": missingMessageFields,
	})
	v1 := e.Group("/v1", s.authenticate, s.rateLimit)
	s.messageRoutes(v1)
	s.adminRoutes(v1)
	s.domainRoutes(v1) // api/domains.go
	s.inboundRoutes(v1)
	s.webhookRoutes(v1)                        // api/webhooks.go
	s.feedbackRoutes(e, v1)                    // api/feedback.go
	if err := s.consoleRoutes(e); err != nil { // api/console.go
		return err
	}
	s.echo = e
	return nil
}

func (s *Server) messageRoutes(g *echo.Group) {
	g.POST("/messages", s.sendMessage, s.requireScope(scopeSend))
	g.POST("/messages/batch", s.sendBatch, s.requireScope(scopeSend))
	g.GET("/messages", s.listMessages, s.requireScope(scopeRead))
	g.GET("/messages/:id", s.getMessage, s.requireScope(scopeRead))
	g.POST("/messages/:id/cancel", s.cancelMessage, s.requireScope(scopeSend))
	g.GET("/events", s.listEvents, s.requireScope(scopeRead))
	g.GET("/suppressions", s.listSuppressions, s.requireScope(scopeSuppressions))
	g.POST("/suppressions", s.createSuppression, s.requireScope(scopeSuppressions))
	g.GET("/suppressions/export", s.exportSuppressions, s.requireScope(scopeSuppressions)) // api/suppressioncsv.go
	g.POST("/suppressions/import", s.importSuppressions, s.requireScope(scopeSuppressions))
	g.GET("/suppressions/:email", s.getSuppression, s.requireScope(scopeSuppressions))
	g.DELETE("/suppressions/:email", s.deleteSuppression, s.requireScope(scopeSuppressions))
}

func (s *Server) adminRoutes(g *echo.Group) {
	g.POST("/projects", s.createProject, s.requireScope(scopeAdmin))
	g.GET("/projects", s.listProjects, s.requireScope(scopeAdmin))
	g.POST("/keys", s.createKey, s.requireScope(scopeAdmin))
	g.GET("/keys", s.listKeys, s.requireScope(scopeAdmin))
	g.GET("/keys/:id", s.getKey, s.requireScope(scopeAdmin))
	g.DELETE("/keys/:id", s.revokeKey, s.requireScope(scopeAdmin))
}
