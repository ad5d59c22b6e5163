package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
)

// CSRF protection is a synchronizer token tied to the session: the token
// is an HMAC of a fixed label keyed with the session id (which only the
// cookie carries, and the database only as a hash), so it needs no
// storage and changes with every session. A state-changing request must
// carry it in the csrf_token form field or the X-CSRF-Token header, and
// must not come from another site (Sec-Fetch-Site, Origin). The sign-in
// form is protected the same way with a token keyed by a short-lived
// pre-session cookie (login CSRF).

// csrfField is the form field, and csrfHeader the header, carrying the token.
const (
	csrfField  = "csrf_token"
	csrfHeader = "X-CSRF-Token"
)

// csrfToken derives the token of a secret (a session id, or the sign-in
// cookie's value) for a purpose.
func csrfToken(secret, purpose string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("mailgate console csrf " + purpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF reports whether r carries the token of secret for purpose and
// comes from this site.
func validCSRF(r *http.Request, secret, purpose string) bool {
	if secret == "" || !sameOrigin(r) {
		return false
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return hmac.Equal([]byte(got), []byte(csrfToken(secret, purpose)))
}

// sameOrigin refuses a request a browser marks as cross-site
// (Sec-Fetch-Site, Fetch Metadata) or whose Origin is not this host. A
// client that sends neither (not a browser) is left to the token.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
