package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// healthz answers while the process runs.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, healthBody{Status: "ok"})
}

// readyz answers 200 when the database and every ReadyCheck answer, else
// 503 naming what is down.
func (s *Server) readyz(c echo.Context) error {
	checks := append([]ReadyCheck{{Name: "database", Check: s.deps.Store.Ping}}, s.deps.Ready...)
	body := healthBody{Status: "ok", Checks: map[string]string{}}
	code := http.StatusOK
	for _, rc := range checks {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
		err := rc.Check(ctx)
		cancel()
		if err != nil {
			body.Checks[rc.Name] = "unavailable"
			body.Status, code = "unavailable", http.StatusServiceUnavailable
			s.deps.Log.Warn("readiness check failed", "check", rc.Name, "err", err)
			continue
		}
		body.Checks[rc.Name] = "ok"
	}
	return c.JSON(code, body)
}
