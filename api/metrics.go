package api

import (
	"errors"
	"fmt"

	"github.com/labstack/echo-contrib/echoprometheus"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's own collectors.
type metrics struct {
	// accepted counts messages committed with a 202.
	// Labels: project (project name), domain (sender domain).
	accepted *prometheus.CounterVec
	// rejected counts refused sends. Label reason: validation, malformed,
	// too_large, sender_domain, rate_limited, idempotency.
	rejected *prometheus.CounterVec
	// enqueueFailures counts committed messages whose enqueue failed; the
	// reconciler sends them later.
	enqueueFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_messages_accepted_total",
			Help: "Messages accepted (committed and answered 202), by project and sender domain.",
		}, []string{"project", "domain"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_messages_rejected_total",
			Help: "Send requests refused, by reason.",
		}, []string{"reason"}),
		enqueueFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailgate_enqueue_failures_total",
			Help: "Committed messages whose send task could not be enqueued (the reconciler heals them).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.accepted, m.rejected, m.enqueueFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}

// useHTTPMetrics adds the request metrics (count, duration, sizes by route).
func (s *Server) useHTTPMetrics(e *echo.Echo) error {
	if s.deps.Registry == nil {
		return nil
	}
	mw, err := echoprometheus.MiddlewareConfig{
		Namespace:                 "mailgate",
		Subsystem:                 "http",
		Registerer:                s.deps.Registry,
		DoNotUseRequestPathFor404: true,
		Skipper:                   func(c echo.Context) bool { return c.Path() == "/metrics" },
		StatusCodeResolver:        statusOf,
	}.ToMiddleware()
	if err != nil {
		return fmt.Errorf("http metrics: %w", err)
	}
	e.Use(mw)
	return nil
}

// statusOf is the status the client sees, errors included.
func statusOf(c echo.Context, err error) int {
	if err != nil {
		var p *Problem
		if errors.As(err, &p) {
			return p.Status
		}
		return problemFor(err).Status
	}
	return c.Response().Status
}

func (s *Server) metricsHandler() echo.HandlerFunc {
	g := s.deps.Gatherer
	if g == nil {
		g = prometheus.NewRegistry()
	}
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	return echo.WrapHandler(h)
}
