package api

import (
	"math"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

const (
	scopeSend         = apikey.ScopeSend
	scopeRead         = apikey.ScopeRead
	scopeSuppressions = apikey.ScopeSuppressions
	scopeAdmin        = apikey.ScopeAdmin
)

// ctxKey is where authenticate leaves the caller's key in the echo context.
const ctxKey = "mailgate.key"

// caller is the authenticated key of a request.
func caller(c echo.Context) store.APIKey {
	k, _ := c.Get(ctxKey).(store.APIKey)
	return k
}

// authenticate checks the bearer token: 401 without a valid, unrevoked key.
// The key is read from the database on every request so that a revoked key
// is refused at once, by every replica.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token, ok := bearerToken(c.Request())
		if !ok {
			return unauthorized("missing bearer token: send Authorization: Bearer mg_…")
		}
		key, ok, err := s.Authenticate(c.Request().Context(), token)
		if err != nil {
			return err
		}
		if !ok {
			return unauthorized("invalid or revoked API key")
		}
		c.Set(ctxKey, key)
		return next(c)
	}
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// unauthorized is the 401 answer; its WWW-Authenticate names the Bearer
// scheme (RFC 6750 §3).
func unauthorized(detail string) *Problem {
	p := newProblem(http.StatusUnauthorized, "unauthorized", "Unauthorized", detail)
	p.Challenge = "Bearer"
	return p
}

// requireScope answers 403 naming the scope the key lacks; only a key
// holding it has the request checked against the contract (s.validate), so
// a key that may not use a route learns nothing of its rules and gets 403
// whatever its body.
func (s *Server) requireScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		next = s.validate(next)
		return func(c echo.Context) error {
			if !apikey.HasScope(caller(c).Scopes, scope) {
				return newProblem(http.StatusForbidden, "forbidden", "Missing scope",
					"this API key lacks the scope "+scope)
			}
			return next(c)
		}
	}
}

// rateLimit enforces the per-key request rate shared across replicas:
// 429 with Retry-After (whole seconds, at least 1).
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return s.rateLimitBy("key", func(c echo.Context) string { return caller(c).ID },
		"this API key is over its request rate; retry later")(next)
}

// rateLimitBy limits requests per id (of the scope) to the API rate
// limit, answering 429 with Retry-After over it.
func (s *Server) rateLimitBy(scope string, id func(echo.Context) string, detail string) echo.MiddlewareFunc {
	lim := ratelimit.PerSecond(s.cfg.RateLimit)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if lim.Off() || s.deps.Limiter == nil {
			return next
		}
		return func(c echo.Context) error {
			d, err := s.deps.Limiter.Allow(c.Request().Context(), scope, id(c), lim)
			if err != nil {
				return err
			}
			if !d.Allowed {
				p := newProblem(http.StatusTooManyRequests, "rate-limited", "Too many requests", detail)
				p.RetryAfter = max(int(math.Ceil(d.RetryAfter.Seconds())), 1)
				return p
			}
			return next(c)
		}
	}
}
