package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/store"
)

// TestRejectedSendsCounted checks that a send refused by any layer before
// the handler (body limit, contract, authentication) is counted under its
// reason, on both send routes.
func TestRejectedSendsCounted(t *testing.T) {
	e := newEnv(t, store.DialectSQLite, func(c *Config, _ *Deps) { c.BodyLimit = 4096 })
	big := with(message(), "text", strings.Repeat("a", 8192))
	cases := []struct {
		name   string
		rq     request
		noKey  bool
		code   int
		reason string
	}{
		{"text body", request{Body: "{}", Header: map[string]string{"Content-Type": "text/plain"}},
			false, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"over the body limit", request{Body: big}, false, http.StatusRequestEntityTooLarge, "too_large"},
		{"not JSON", request{Body: `{"from":`}, false, http.StatusBadRequest, "malformed"},
		{"schema", request{Body: map[string]any{}}, false, http.StatusUnprocessableEntity, "validation"},
		{"no key", request{Body: message()}, true, http.StatusUnauthorized, "unauthorized"},
	}
	for _, path := range []string{"/v1/messages", "/v1/messages/batch"} {
		for _, tc := range cases {
			t.Run(strings.TrimPrefix(path, "/v1/")+" "+tc.name, func(t *testing.T) {
				rq := tc.rq
				rq.Method, rq.Path = http.MethodPost, path
				if !tc.noKey {
					rq.Token = e.sender
				}
				if b, ok := rq.Body.(map[string]any); ok && path == "/v1/messages/batch" && len(b) > 0 {
					rq.Body = map[string]any{"messages": []any{b}}
				}
				before := testutil.ToFloat64(e.srv.metrics.rejected.WithLabelValues(tc.reason))
				wantCode(t, e.do(t, rq), tc.code)
				if got := testutil.ToFloat64(e.srv.metrics.rejected.WithLabelValues(tc.reason)) - before; got != 1 {
					t.Errorf("mailgate_messages_rejected_total{reason=%q} grew by %v, want 1", tc.reason, got)
				}
			})
		}
	}
	wantNothingStored(t, e)
}

// TestRejectedNotCountedOffSendRoutes checks that refusals of other routes
// are not counted as refused sends.
func TestRejectedNotCountedOffSendRoutes(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	wantCode(t, e.post(t, "/v1/suppressions", e.sender, map[string]any{}), http.StatusUnprocessableEntity)
	wantCode(t, e.get(t, "/v1/messages", ""), http.StatusUnauthorized)
	if n := testutil.CollectAndCount(e.srv.metrics.rejected); n != 0 {
		t.Errorf("%d rejected series after refusals off the send routes, want 0", n)
	}
}

// TestHTTPMetricsIgnoreHost checks that the client's Host header creates
// no series: requests with random hosts leave the same series as one.
func TestHTTPMetricsIgnoreHost(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	serve := func(host string) {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /healthz for host %s: status %d", host, rec.Code)
		}
	}
	serve("a.example")
	before := httpSeries(t, e)
	for _, host := range []string{"x7f3k.attacker.example", "9q2m.attacker.example", "127.0.0.1:1"} {
		serve(host)
	}
	if diff := cmp.Diff(before, httpSeries(t, e)); diff != "" {
		t.Errorf("series of mailgate_http_requests_total changed with the Host header (-before +after):\n%s", diff)
	}
}

// httpSeries lists the label sets of mailgate_http_requests_total.
func httpSeries(t *testing.T, e *testEnv) []string {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "mailgate_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out = append(out, strings.Join(labels, ","))
		}
	}
	if len(out) == 0 {
		t.Fatal("no mailgate_http_requests_total series")
	}
	return out
}

// TestCountRejectedReasons: a refusal counts under its type's reason, a
// sender-domain refusal under sender_domain, an unknown type under other,
// and a server error not at all.
func TestCountRejectedReasons(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Problem{
		validationProblem(nil),
		senderDomainProblem("/from", "shop.example"),
		senderDomainProblem("/messages/1/from", "shop.example"),
		newProblem(http.StatusConflict, "idempotency-mismatch", "", ""),
		newProblem(http.StatusConflict, "idempotency-in-flight", "", ""),
		newProblem(http.StatusTeapot, "teapot", "", ""),
		unavailableProblem("down"),
	} {
		m.countRejected(p)
	}
	got := map[string]float64{}
	for _, reason := range []string{"validation", "sender_domain", "idempotency", "other", "unavailable"} {
		got[reason] = testutil.ToFloat64(m.rejected.WithLabelValues(reason))
	}
	want := map[string]float64{"validation": 1, "sender_domain": 2, "idempotency": 2, "other": 1, "unavailable": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rejections by reason (-want +got):\n%s", diff)
	}
}
