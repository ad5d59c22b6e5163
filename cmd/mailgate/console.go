package main

import (
	"fmt"
	"net/http"

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
	cfg := console.Config{
		IdleTimeout:     a.cfg.ConsoleIdleTimeout,
		SessionLifetime: a.cfg.ConsoleSessionLifetime,
		SecureCookies:   a.cfg.ConsoleSecureCookies,
		SignInRate:      rate,
	}
	return func(s *api.Server) (http.Handler, error) {
		return console.New(cfg, console.Deps{Store: a.store, Ops: s, Limiter: limiter, Log: a.log,
			BuildMIME: func(m store.Message, p store.Payload) ([]byte, error) {
				return worker.RebuildMIME(m, p, m.CreatedAt)
			}})
	}, nil
}
