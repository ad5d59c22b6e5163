package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// handlerFunc is a signed-in page or action: req is the session, its key
// and project. An error is a failure (logged, answered 503); what the
// user did wrong is rendered by the handler itself.
type handlerFunc func(w http.ResponseWriter, r *http.Request, req *request) error

// routes is the console's one route table. Each page's handler and
// template live in page_NAME.go and templates/NAME.html.
func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET /console", c.home)
	m.HandleFunc("GET /console/{$}", c.home)
	m.HandleFunc("POST /console/sign-in", c.signIn)
	m.Handle("POST /console/sign-out", c.signedIn("", c.signOut))
	m.Handle("POST /console/project", c.signedIn(apikey.ScopeAdmin, c.switchProject))
	m.Handle("GET /console/assets/{file...}", c.assets)

	m.Handle("GET /console/overview", c.signedIn(apikey.ScopeRead, c.overview)) // page_overview.go

	m.Handle("GET /console/messages", c.signedIn(apikey.ScopeRead, c.messages)) // page_messages.go
	m.Handle("GET /console/messages/rows", c.signedIn(apikey.ScopeRead, c.messageRows))
	m.Handle("GET /console/messages/{id}", c.signedIn(apikey.ScopeRead, c.message)) // page_message.go
	m.Handle("GET /console/messages/{id}/html", c.signedIn(apikey.ScopeRead, c.messageHTML))
	m.Handle("GET /console/messages/{id}/raw", c.signedIn(apikey.ScopeRead, c.messageRaw))
	m.Handle("POST /console/messages/{id}/cancel", c.signedIn(apikey.ScopeSend, c.cancelMessage))

	m.Handle("GET /console/domains", c.signedIn(apikey.ScopeDomains, c.domains)) // page_domains.go
	m.Handle("POST /console/domains", c.signedIn(apikey.ScopeDomains, c.createDomain))
	m.Handle("GET /console/domains/{name}", c.signedIn(apikey.ScopeDomains, c.domain))
	m.Handle("POST /console/domains/{name}/verify", c.signedIn(apikey.ScopeDomains, c.verifyDomain))
	m.Handle("POST /console/domains/{name}/rotate", c.signedIn(apikey.ScopeDomains, c.rotateDKIM))
	m.Handle("POST /console/domains/{name}/retire", c.signedIn(apikey.ScopeDomains, c.retireDKIM))

	m.Handle("GET /console/suppressions", c.signedIn(apikey.ScopeSuppressions, c.suppressions)) // page_suppressions.go
	m.Handle("POST /console/suppressions", c.signedIn(apikey.ScopeSuppressions, c.addSuppression))
	m.Handle("POST /console/suppressions/remove", c.signedIn(apikey.ScopeSuppressions, c.removeSuppression))
	m.Handle("POST /console/suppressions/import", c.signedInUpTo(apikey.ScopeSuppressions, importLimit, c.importSuppressions))
	m.Handle("GET /console/suppressions/export", c.signedIn(apikey.ScopeSuppressions, c.exportSuppressions))

	m.Handle("GET /console/inbound", c.signedIn(apikey.ScopeRead, c.inbound)) // page_inbound.go
	m.Handle("GET /console/inbound/{id}/original", c.signedIn(apikey.ScopeRead, c.inboundOriginal))

	m.Handle("GET /console/webhooks", c.signedIn(apikey.ScopeWebhooks, c.webhooks)) // page_webhooks.go
	m.Handle("GET /console/webhooks/{id}", c.signedIn(apikey.ScopeWebhooks, c.webhook))
	m.Handle("POST /console/webhooks/{id}/test", c.signedIn(apikey.ScopeWebhooks, c.testWebhook))
	m.Handle("POST /console/webhooks/{id}/rotate-secret", c.signedIn(apikey.ScopeWebhooks, c.rotateWebhookSecret))
	m.Handle("POST /console/webhooks/{id}/deliveries/{delivery}/retry", c.signedIn(apikey.ScopeWebhooks, c.retryDelivery))

	m.Handle("GET /console/keys", c.signedIn(apikey.ScopeAdmin, c.keys)) // page_keys.go
	m.Handle("POST /console/keys", c.signedIn(apikey.ScopeAdmin, c.createKey))
	m.Handle("POST /console/keys/{id}/revoke", c.signedIn(apikey.ScopeAdmin, c.revokeKey))

	m.HandleFunc("/console/", c.notFound)
}

// navLink is an entry of the menu.
type navLink struct {
	Title, Path, Scope string
	// Current marks the page being shown.
	Current bool
}

// navigation is the menu, in order; a key sees the entries its scopes
// allow.
func navigation() []navLink {
	return []navLink{
		{Title: "Overview", Path: "/console/overview", Scope: apikey.ScopeRead},
		{Title: "Messages", Path: "/console/messages", Scope: apikey.ScopeRead},
		{Title: "Domains", Path: "/console/domains", Scope: apikey.ScopeDomains},
		{Title: "Suppressions", Path: "/console/suppressions", Scope: apikey.ScopeSuppressions},
		{Title: "Inbound", Path: "/console/inbound", Scope: apikey.ScopeRead},
		{Title: "Webhooks", Path: "/console/webhooks", Scope: apikey.ScopeWebhooks},
		{Title: "Keys", Path: "/console/keys", Scope: apikey.ScopeAdmin},
	}
}

// navFor is the menu req's key may see, the current page marked.
func navFor(req *request, path string) []navLink {
	var out []navLink
	for _, l := range navigation() {
		if !req.Can(l.Scope) {
			continue
		}
		l.Current = path == l.Path || strings.HasPrefix(path, l.Path+"/")
		out = append(out, l)
	}
	return out
}

// formLimit bounds a console form's body.
const formLimit = 64 << 10

// signedIn wraps a handler: without a live session, a GET goes to the
// sign-in page and anything else is refused (401); a key without scope
// is refused (403); a state-changing request needs the session's CSRF
// token and must come from this site (403).
func (c *Console) signedIn(scope string, h handlerFunc) http.Handler {
	return c.signedInUpTo(scope, formLimit, h)
}

// signedInUpTo is signedIn for a form whose body may be up to limit bytes
// (a file upload).
func (c *Console) signedInUpTo(scope string, limit int64, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok, err := c.currentSession(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if !ok {
			c.signedOut(w, r)
			return
		}
		if scope != "" && !req.Can(scope) {
			c.renderError(w, r, req, http.StatusForbidden, "This API key lacks the scope "+scope+".")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			if !validCSRF(r, req.id, "session") {
				c.renderError(w, r, req, http.StatusForbidden,
					"The form was refused: its security token is missing or stale. Reload the page and try again.")
				return
			}
		}
		if err := h(w, r, req); err != nil {
			c.fail(w, r, err)
		}
	})
}

// signedOut answers a request without a live session.
func (c *Console) signedOut(w http.ResponseWriter, r *http.Request) {
	c.setCookie(w, r, sessionCookie, "", -1)
	if r.Header.Get("HX-Request") != "" {
		// htmx follows HX-Redirect with a full page load.
		w.Header().Set("HX-Redirect", "/console")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
}

// notFound is the console's 404 page.
func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	req, _, err := c.currentSession(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.renderError(w, r, req, http.StatusNotFound, "There is no such page.")
}

// fail answers a failure of the database or another dependency: 503
// with Retry-After, logged without the request's secrets.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, nil, http.StatusNotFound, "Not found.")
		return
	}
	c.deps.Log.Error("console request", "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "5")
	c.renderError(w, r, nil, http.StatusServiceUnavailable,
		"The console is unavailable for a moment. Try again in a few seconds.")
}
