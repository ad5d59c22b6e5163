package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// ConsoleFactory builds the web console's handler given the server, whose
// methods (Authenticate, ActiveKey, CancelMessage, …) are the operations
// the console performs: one implementation for both. Deps.Console.
type ConsoleFactory func(*Server) (http.Handler, error)

// Authenticate checks an API token the way every /v1 request is checked
// (the same key cache and revocation broadcast): the key and true, or
// false when the token names no valid, unrevoked key.
func (s *Server) Authenticate(ctx context.Context, token string) (store.APIKey, bool, error) {
	id, secret, err := apikey.Parse(token)
	if err != nil {
		return store.APIKey{}, false, nil
	}
	key, ok, err := s.ActiveKey(ctx, id)
	if !ok || err != nil {
		return store.APIKey{}, false, err
	}
	if !apikey.Matches(secret, key.SecretHash) {
		return store.APIKey{}, false, nil
	}
	return key, true, nil
}

// ActiveKey reads a key by id through the key cache: false when it is
// unknown or revoked. A revocation through any replica evicts the
// key everywhere at once (keyRevoked), so a console session of a revoked
// key ends on its next request.
func (s *Server) ActiveKey(ctx context.Context, id string) (store.APIKey, bool, error) {
	key, err := s.lookupKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, false, nil
	}
	if err != nil {
		return store.APIKey{}, false, fmt.Errorf("read key: %w", err)
	}
	return key, key.RevokedAt == nil, nil
}

// CancelMessage cancels the recipients of a project's message not yet
// sent and removes its pending task (the worker re-checks statuses in
// any case). Another project's message is store.ErrNotFound.
func (s *Server) CancelMessage(ctx context.Context, projectID, id string) (store.Message, error) {
	m, err := s.deps.Store.CancelMessage(ctx, projectID, id)
	if err != nil {
		return store.Message{}, err
	}
	if err := s.deps.Queue.CancelSend(m.ID); err != nil {
		s.deps.Log.Warn("remove cancelled task", "message_id", m.ID, "err", err)
	}
	return m, nil
}

// consoleRoutes mounts the web console under /console when Deps.Console
// is set. The console is HTML with its own session, CSRF and CSP rules
// (package console); it is not part of openapi.yaml.
func (s *Server) consoleRoutes(e *echo.Echo) error {
	if s.deps.Console == nil {
		return nil
	}
	h, err := s.deps.Console(s)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	e.Any("/console", echo.WrapHandler(h))
	e.Any("/console/*", echo.WrapHandler(h))
	return nil
}
