package console

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// sessionCookie carries the session id: HttpOnly, SameSite=Strict, Path
// /console, Secure over TLS; a session cookie (no Max-Age): the server
// decides expiry.
const sessionCookie = "mailgate_console"

// touchEvery is how stale a session's last_seen_at may get before a
// request rewrites it: the idle expiry is then exact to within this, and
// a page that polls writes once a minute, not on every poll.
const touchEvery = time.Minute

// request is what a signed-in request knows: its session, the key that
// signed in (read again on every request) and the project shown.
type request struct {
	session store.ConsoleSession
	// id is the session id from the cookie (the CSRF token's secret).
	id string
	// Key is the API key of the session.
	Key store.APIKey
	// ProjectID is the project the console shows.
	ProjectID string
}

// CSRF is the request's CSRF token (for templates and htmx).
func (r *request) CSRF() string { return csrfToken(r.id, "session") }

// Can reports whether the key holds scope.
func (r *request) Can(scope string) bool { return apikey.HasScope(r.Key.Scopes, scope) }

// hashID is how a session id is stored.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// newID is a random 256-bit id, URL-safe.
func (c *Console) newID() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(c.cfg.Random, b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// currentSession reads the request's session: false when there is none,
// it expired (idle or absolute) or its key is revoked; an ended session's
// row is deleted. The key is checked through Ops.ActiveKey on every
// request, as the API checks it.
func (c *Console) currentSession(r *http.Request) (*request, bool, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, false, nil
	}
	ctx, h := r.Context(), hashID(ck.Value)
	s, err := c.deps.Store.ConsoleSessionByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	now := c.cfg.Now()
	if now.Sub(s.LastSeenAt) >= c.cfg.IdleTimeout || now.Sub(s.CreatedAt) >= c.cfg.SessionLifetime {
		return nil, false, c.deps.Store.DeleteConsoleSession(ctx, h)
	}
	key, ok, err := c.deps.Ops.ActiveKey(ctx, s.KeyID)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, c.deps.Store.DeleteConsoleSession(ctx, h)
	}
	if now.Sub(s.LastSeenAt) >= touchEvery && !isPoll(r) {
		if err := c.deps.Store.TouchConsoleSession(ctx, h, now); err != nil {
			return nil, false, err
		}
	}
	return &request{session: s, id: ck.Value, Key: key, ProjectID: s.ProjectID}, true, nil
}

// isPoll reports whether r is the message list's own refresh (htmx polls
// the rows every few seconds): it is not the user's activity, so an open
// list does not keep an idle session alive.
func isPoll(r *http.Request) bool {
	return r.URL.Path == "/console/messages/rows"
}

// startSession stores a new session for key and sets its cookie. The
// browser's previous session, if it sent one, ends: signing in again (with
// another key, say) leaves no second live session behind.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, key store.APIKey) error {
	id, err := c.newID()
	if err != nil {
		return err
	}
	now := c.cfg.Now()
	ctx := r.Context()
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		if err := c.deps.Store.DeleteConsoleSession(ctx, hashID(old.Value)); err != nil {
			return err
		}
	}
	if _, err := c.deps.Store.DeleteExpiredConsoleSessions(ctx, now.Add(-c.cfg.IdleTimeout),
		now.Add(-c.cfg.SessionLifetime)); err != nil {
		return err
	}
	err = c.deps.Store.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: hashID(id), KeyID: key.ID,
		ProjectID: key.ProjectID, CreatedAt: now, LastSeenAt: now})
	if err != nil {
		return err
	}
	c.setCookie(w, r, sessionCookie, id, 0)
	return nil
}

// setCookie sets a console cookie; maxAge < 0 deletes it, 0 makes it
// last the browser session.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/console", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || c.cfg.SecureCookies})
}
