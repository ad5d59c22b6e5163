// Package console is mailgate's web console, served under /console by the
// API role: server-rendered HTML (html/template) with progressive
// enhancement (htmx, embedded), for people who hold an API key.
//
// It owns sign-in with an API key and server-side sessions (session.go,
// signin.go), CSRF protection (csrf.go), the security headers and
// Content-Security-Policy of every page (headers.go), the templates and
// layout (render.go, templates/), the embedded assets (assets.go, assets/)
// and the pages (page_*.go). It reads through package store; operations
// that the API performs too (checking a key, cancelling a message, …) are
// reached through Ops, which *api.Server implements, so that each has one
// implementation. It does not import package api: cmd/mailgate wires the
// two (api.Deps.Console).
//
// # Adding a page
//
//  1. Write page_NAME.go with the handler, a method of *Console with the
//     signature of handlerFunc: it reads through c.deps.Store (or Ops),
//     always with req.ProjectID, and ends with c.render(w, r, req,
//     "NAME.html", title, data).
//  2. Write templates/NAME.html defining "content" (and "title" is given
//     by render): only html/template escaping, no inline script or style
//     attribute (the CSP forbids them); a form that changes state is a
//     POST carrying {{template "csrf" .}}.
//  3. Add its route to routes() in routes.go with the scope it needs, and
//     its entry to navigation() if it belongs in the menu.
//  4. Test it in a real browser (browser_test.go's helpers: startGateway,
//     signIn, screenshot, the XSS trap).
package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// Config configures the console. Zero fields take their defaults.
type Config struct {
	// IdleTimeout ends a session unused for this long
	// (MAILGATE_CONSOLE_IDLE_TIMEOUT). Default 30 minutes.
	IdleTimeout time.Duration
	// SessionLifetime ends a session this long after sign-in, used or
	// not (MAILGATE_CONSOLE_SESSION_LIFETIME). Default 12 hours.
	SessionLifetime time.Duration
	// SecureCookies marks the cookies Secure even on a plain-HTTP
	// request, for a console behind a TLS-terminating proxy
	// (MAILGATE_CONSOLE_SECURE_COOKIES). A request that came over TLS
	// always gets Secure cookies. Default false.
	SecureCookies bool
	// SignInRate bounds sign-in attempts per client address, shared
	// across replicas through Redis (MAILGATE_CONSOLE_SIGNIN_RATE, whose
	// default is 10/m). Default zero: no limit.
	SignInRate ratelimit.Limit
	// ClientAddress names the client of a request for the sign-in limit.
	// Default: the connection's peer address. Behind a reverse proxy
	// every peer is the proxy, so cmd passes one that reads
	// X-Forwarded-For when the peer is a trusted proxy
	// (MAILGATE_TRUSTED_PROXIES).
	ClientAddress func(*http.Request) string
	// PollInterval is how often the messages list refreshes itself while
	// open (with JavaScript). Default 5 seconds.
	PollInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Random makes session ids and sign-in tokens. Default crypto/rand.
	Random io.Reader
}

func (c Config) withDefaults() Config {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = 12 * time.Hour
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClientAddress == nil {
		c.ClientAddress = peerAddress
	}
	if c.Random == nil {
		c.Random = rand.Reader
	}
	return c
}

// Ops are the operations the console shares with the API; *api.Server
// implements them. Results are values: ok is false for a token or key
// that names no valid, unrevoked key; err is for a failure.
type Ops interface {
	// Authenticate checks an API token as the API checks a bearer token.
	Authenticate(ctx context.Context, token string) (key store.APIKey, ok bool, err error)
	// ActiveKey reads a key by id as the API does (cache kept in step
	// with revocations across replicas); ok is false once it is revoked.
	ActiveKey(ctx context.Context, id string) (key store.APIKey, ok bool, err error)
	// CancelMessage is POST /v1/messages/{id}/cancel's operation.
	CancelMessage(ctx context.Context, projectID, id string) (store.Message, error)

	// The operations of the domain, suppression, webhook and key pages.
	// invalid names each bad field (a JSON Pointer such as "/email", or
	// "line:N:COLUMN" for a CSV row) with its message; nothing changed
	// then. The errors are the store's sentinels (store.ErrNotFound,
	// store.ErrConflict, store.ErrLastActiveKey) or failures.

	// AddSuppression is POST /v1/suppressions's operation.
	AddSuppression(ctx context.Context, projectID, email, reason, note string) (sp store.Suppression, invalid map[string]string, err error)
	// ImportSuppressionsCSV is POST /v1/suppressions/import's operation.
	ImportSuppressionsCSV(ctx context.Context, projectID string, r io.Reader) (res store.SuppressionImport, invalid map[string]string, err error)
	// ExportSuppressionsCSV is GET /v1/suppressions/export's operation.
	ExportSuppressionsCSV(ctx context.Context, projectID, reason string, w http.ResponseWriter) error
	// CreateDomainNamed is POST /v1/domains's operation with default
	// keys.
	CreateDomainNamed(ctx context.Context, projectID, name string) (d store.Domain, invalid map[string]string, err error)
	// DNSRecords are the records a domain should publish (the API's
	// dns_records).
	DNSRecords(d store.Domain) []dnscheck.Record
	// VerifyDomain is POST /v1/domains/{name}/verify's operation; taken
	// is true when another project verified the name.
	VerifyDomain(ctx context.Context, d store.Domain) (out store.Domain, results []dnscheck.Result, taken bool, err error)
	// RotateDKIM is POST /v1/domains/{name}/dkim/rotate's operation.
	RotateDKIM(ctx context.Context, d store.Domain) (store.Domain, error)
	// RetireDKIM is DELETE /v1/domains/{name}/dkim/{selector}'s operation.
	RetireDKIM(ctx context.Context, projectID, name, selector string) error
	// RotateWebhookSecret is POST /v1/webhooks/{id}/rotate-secret's
	// operation: the new secret, shown once.
	RotateWebhookSecret(ctx context.Context, projectID, id string) (ep store.WebhookEndpoint, secret string, err error)
	// TestWebhook is POST /v1/webhooks/{id}/test's operation.
	TestWebhook(ctx context.Context, projectID, id string) (store.WebhookDelivery, error)
	// CreateKey is POST /v1/keys's operation: the token, shown once.
	CreateKey(ctx context.Context, projectName, name string, scopes []string) (k store.APIKey, project, token string, invalid map[string]string, err error)
	// RevokeKey is DELETE /v1/keys/{id}'s operation.
	RevokeKey(ctx context.Context, id string) error
}

// Deps are the console's collaborators.
type Deps struct {
	Store *store.Store
	Ops   Ops
	// Limiter rate-limits sign-in attempts; nil turns the limit off.
	Limiter *ratelimit.Limiter
	// BuildMIME builds a stored message's MIME for the raw download
	// (worker.RebuildMIME: as a send builds it, without the signature a
	// send adds). Default none: no raw download.
	BuildMIME func(store.Message, store.Payload) ([]byte, error)
	// Log receives failures. Default discard.
	Log *slog.Logger
}

// Console is the web console, an http.Handler for /console and below.
type Console struct {
	cfg       Config
	deps      Deps
	mux       *http.ServeMux
	templates map[string]*pageTemplate
	assets    *assetServer
}

// New builds the console: it parses its templates and indexes its assets.
func New(cfg Config, deps Deps) (*Console, error) {
	if deps.Store == nil || deps.Ops == nil {
		return nil, errors.New("console: Store and Ops are required")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg.withDefaults(), deps: deps, mux: http.NewServeMux()}
	var err error
	if c.templates, err = parseTemplates(); err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	if c.assets, err = newAssetServer(); err != nil {
		return nil, fmt.Errorf("console assets: %w", err)
	}
	c.routes()
	return c, nil
}

// ServeHTTP serves a console request with the security headers every
// console response carries (headers.go).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}
