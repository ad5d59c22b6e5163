package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo-contrib/echoprometheus"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailgate/mailgate/feedback"
)

// metrics are the API's own collectors.
type metrics struct {
	// accepted counts messages committed with a 202.
	// Labels: project (project name), domain (sender domain).
	accepted *prometheus.CounterVec
	// rejected counts refused sends: every 4xx answer to POST /v1/messages
	// and POST /v1/messages/batch, and every refused item of a batch. Label
	// reason (rejectReasons): validation, sender_domain, malformed,
	// too_large, unsupported_media_type, unauthorized, forbidden,
	// rate_limited, idempotency, other.
	rejected *prometheus.CounterVec
	// enqueueFailures counts committed messages whose enqueue failed; the
	// reconciler sends them later.
	enqueueFailures prometheus.Counter
	// feedbackRefused counts provider notifications refused at
	// POST /v1/feedback/{provider}/{token}. Labels: provider (ses,
	// sendgrid, mailgun, postmark), reason (unknown_endpoint, too_large,
	// unreadable, unauthenticated, forged, stale, replayed, malformed,
	// certificate, certificate_unavailable, topic).
	feedbackRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_messages_accepted_total",
			Help: "Messages accepted (committed and answered 202), by project and sender domain.",
		}, []string{"project", "domain"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_messages_rejected_total",
			Help: "Send requests (and batch items) refused with a 4xx answer, by reason.",
		}, []string{"reason"}),
		enqueueFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailgate_enqueue_failures_total",
			Help: "Committed messages whose send task could not be enqueued (the reconciler heals them).",
		}),
		feedbackRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_feedback_refused_total",
			Help: "Provider feedback notifications refused (never acted on), by provider and reason.",
		}, []string{"provider", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.accepted, m.rejected, m.enqueueFailures, m.feedbackRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}

// rejectReasons maps the slug of a problem's type to the reason label of
// mailgate_messages_rejected_total; a slug not listed counts as "other", so
// the label stays bounded whatever a handler answers.
var rejectReasons = map[string]string{
	"validation":             "validation",
	"malformed":              "malformed",
	"too-large":              "too_large",
	"unsupported-media-type": "unsupported_media_type",
	"unauthorized":           "unauthorized",
	"forbidden":              "forbidden",
	"rate-limited":           "rate_limited",
	"idempotency-in-flight":  "idempotency",
	"idempotency-mismatch":   "idempotency",
}

// countRejected counts p when it refuses a send (a 4xx). Every refusal is
// counted here, from the problem the client gets, so that none is missed
// whichever layer refused it (body limit, contract, authentication, rate
// limit, handler).
func (m *metrics) countRejected(p *Problem) {
	if p.Status < 400 || p.Status >= 500 {
		return
	}
	reason := p.reason
	if reason == "" {
		reason = rejectReasons[strings.TrimPrefix(p.Type, problemType)]
	}
	if reason == "" {
		reason = "other"
	}
	m.rejected.WithLabelValues(reason).Inc()
}

// isSend reports whether c is a send request (POST /v1/messages or POST
// /v1/messages/batch): c.Path is the route matched, set before any
// middleware runs.
func isSend(c echo.Context) bool {
	if c.Request().Method != http.MethodPost {
		return false
	}
	p := c.Path()
	return p == "/v1/messages" || p == "/v1/messages/batch"
}

// useHTTPMetrics adds the request metrics (count, duration, sizes by route
// and status). Their host label is always empty, which Prometheus treats as
// no label: echoprometheus would copy the client's Host header into it, and
// any client could then create series without bound.
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
		LabelFuncs:                map[string]echoprometheus.LabelValueFunc{"host": noHost},
	}.ToMiddleware()
	if err != nil {
		return fmt.Errorf("http metrics: %w", err)
	}
	e.Use(mw)
	return nil
}

// noHost is the value of the HTTP metrics' host label.
func noHost(echo.Context, error) string { return "" }

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

// feedbackReceivePath is the route of provider notifications.
const feedbackReceivePath = "/v1/feedback/:provider/:token"

// countFeedbackTooLarge counts a 413 answer to a provider notification
// (reason too_large); other routes' are not counted here.
func (m *metrics) countFeedbackTooLarge(c echo.Context) {
	if p := c.Param("provider"); c.Path() == feedbackReceivePath && slices.Contains(feedback.Providers, p) {
		m.feedbackRefused.WithLabelValues(p, "too_large").Inc()
	}
}
