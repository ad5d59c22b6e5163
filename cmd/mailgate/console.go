package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/console"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// consoleFactory builds the web console the API serves under /console
// (nil when MAILGATE_CONSOLE_ENABLED is false). The console performs the
// API's operations through the *api.Server it is given.
func (a *app) consoleFactory(limiter *ratelimit.Limiter) (api.ConsoleFactory, error) {
	if !a.cfg.ConsoleEnabled {
		return nil, nil
	}
	rate, err := ratelimit.ParseRate(a.cfg.ConsoleSignInRate)
	if err != nil {
		return nil, fmt.Errorf("MAILGATE_CONSOLE_SIGNIN_RATE: %w", err)
	}
	client, err := clientAddress(a.cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	cfg := console.Config{
		IdleTimeout:     a.cfg.ConsoleIdleTimeout,
		SessionLifetime: a.cfg.ConsoleSessionLifetime,
		SecureCookies:   a.cfg.ConsoleSecureCookies,
		SignInRate:      rate,
		ClientAddress:   client,
	}
	return func(s *api.Server) (http.Handler, error) {
		return console.New(cfg, console.Deps{Store: a.store, Ops: s, Limiter: limiter, Log: a.log,
			BuildMIME: func(m store.Message, p store.Payload) ([]byte, error) {
				return worker.RebuildMIME(m, p, m.CreatedAt)
			}})
	}, nil
}

// clientAddress is the console's client address for requests through the
// reverse proxies of MAILGATE_TRUSTED_PROXIES: echo's X-Forwarded-For
// extractor, trusting those networks alone (not echo's default of every
// loopback, link-local and private address), so a client that is not a
// trusted proxy cannot name another address. nil (the peer's address)
// when none is set.
func clientAddress(cidrs []string) (func(*http.Request) string, error) {
	if len(cidrs) == 0 {
		return nil, nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("MAILGATE_TRUSTED_PROXIES: %q is not a CIDR (e.g. 10.0.0.0/8)", c)
		}
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...), nil
}
