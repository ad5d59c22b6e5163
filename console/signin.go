package console

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"

	"github.com/mailgate/mailgate/store"
)

// signInCookie carries the pre-session secret of the sign-in form's CSRF
// token (login CSRF): an hour, HttpOnly, SameSite=Strict.
const signInCookie = "mailgate_console_signin"

// home is GET /console: the first page the key may see when signed in,
// the sign-in form otherwise.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	req, ok, err := c.currentSession(r)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !ok {
		c.renderSignIn(w, r, http.StatusOK, "")
		return
	}
	to := "/console/messages"
	if nav := navFor(req, ""); len(nav) > 0 {
		to = nav[0].Path
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// signInView is the sign-in template's data.
type signInView struct {
	Token, Error string
}

// renderSignIn shows the sign-in form with a fresh login-CSRF secret.
func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, code int, msg string) {
	secret, err := c.newID()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.setCookie(w, r, signInCookie, secret, 3600)
	c.renderStatus(w, r, nil, code, "signin.html", "Sign in", signInView{Token: csrfToken(secret, "sign-in"), Error: msg})
}

// signIn is POST /console/sign-in: the form's key, checked as the API
// checks a bearer token, starts a session. Attempts are rate-limited per
// client address (the connection's: behind a proxy, the proxy's).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	if retry, ok, err := c.allowSignIn(r); err != nil {
		c.fail(w, r, err)
		return
	} else if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		c.renderSignIn(w, r, http.StatusTooManyRequests, "Too many sign-in attempts from your address. Wait a minute.")
		return
	}
	ck, err := r.Cookie(signInCookie)
	if err != nil || !validCSRF(r, ck.Value, "sign-in") {
		c.renderSignIn(w, r, http.StatusForbidden, "The form was stale. Try again.")
		return
	}
	key, ok, err := c.deps.Ops.Authenticate(r.Context(), r.PostFormValue("key"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if !ok {
		c.renderSignIn(w, r, http.StatusUnauthorized, "That key is not valid, or it was revoked.")
		return
	}
	if err := c.startSession(w, r, key); err != nil {
		c.fail(w, r, err)
		return
	}
	c.setCookie(w, r, signInCookie, "", -1)
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

// allowSignIn takes one sign-in attempt of the client's address: the
// seconds to wait (at least 1) and false when over SignInRate.
func (c *Console) allowSignIn(r *http.Request) (int, bool, error) {
	if c.deps.Limiter == nil || c.cfg.SignInRate.Off() {
		return 0, true, nil
	}
	d, err := c.deps.Limiter.Allow(r.Context(), "console-sign-in", c.cfg.ClientAddress(r), c.cfg.SignInRate)
	if err != nil {
		return 0, false, err
	}
	return max(int(math.Ceil(d.RetryAfter.Seconds())), 1), d.Allowed, nil
}

// peerAddress is the address of the connection's peer, without its port.
func peerAddress(r *http.Request) string {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return addr
}

// signOut is POST /console/sign-out: the session ends here and now.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := c.deps.Store.DeleteConsoleSession(r.Context(), req.session.IDHash); err != nil {
		return err
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/console", http.StatusSeeOther)
	return nil
}

// switchProject is POST /console/project (admin keys): the session shows
// another project from now on.
func (c *Console) switchProject(w http.ResponseWriter, r *http.Request, req *request) error {
	p, err := c.deps.Store.ProjectByID(r.Context(), r.PostFormValue("project_id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.renderError(w, r, req, http.StatusUnprocessableEntity, "project_id: there is no such project.")
			return nil
		}
		return err
	}
	if err := c.deps.Store.SetConsoleSessionProject(r.Context(), req.session.IDHash, p.ID); err != nil {
		return err
	}
	http.Redirect(w, r, "/console", http.StatusSeeOther)
	return nil
}
