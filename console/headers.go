package console

import "net/http"

// pagePolicy is the Content-Security-Policy of every console page: only
// the console's own scripts, styles and images (no inline script or
// style, no eval), requests to itself, forms to itself, frames from
// itself (the sandboxed message HTML), and no framing by others.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; frame-src 'self'"

// messageHTMLPolicy is the policy of a message's HTML body (messageHTML):
// a sandbox without scripts, forms, popups or same-origin rights, nothing
// loaded from anywhere but data: images, inline styles only, and framed
// only by the console.
const messageHTMLPolicy = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"frame-ancestors 'self'; base-uri 'none'; form-action 'none'"

// setSecurityHeaders sets the headers every console response carries.
// Pages are never cached (they show a session's data); assets override
// Cache-Control.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on the console's own form posts, which sameOrigin refuses.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cache-Control", "no-store")
}
