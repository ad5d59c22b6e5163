package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

func TestSuppressionRoutes(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		r := e.post(t, "/v1/suppressions", e.sender, map[string]any{"email": "Ann@Example.org"})
		wantCode(t, r, http.StatusCreated)
		var sp wireSuppression
		r.decode(t, &sp)
		if !strings.EqualFold(sp.Email, "ann@example.org") || sp.Reason != store.ReasonManual {
			t.Errorf("created %+v, want ann@example.org, manual", sp)
		}
		wantCode(t, e.post(t, "/v1/suppressions", e.sender,
			map[string]any{"email": "bob@example.net", "reason": "complaint", "note": "from FBL"}), http.StatusCreated)

		for _, path := range []string{"/v1/suppressions/ANN%40example.ORG", "/v1/suppressions/ann@example.org"} {
			r = e.get(t, path, e.sender)
			wantCode(t, r, http.StatusOK)
			r.decode(t, &sp)
			if !strings.EqualFold(sp.Email, "ann@example.org") {
				t.Errorf("GET %s = %+v", path, sp)
			}
		}
		var list wireList[wireSuppression]
		e.get(t, "/v1/suppressions", e.sender).decode(t, &list)
		if len(list.Data) != 2 || list.NextCursor != nil {
			t.Errorf("list %+v, want 2 suppressions", list)
		}
		del := func() response {
			return e.do(t, request{Method: http.MethodDelete, Path: "/v1/suppressions/ANN%40example.org", Token: e.sender})
		}
		wantCode(t, del(), http.StatusNoContent)
		wantProblem(t, del(), http.StatusNotFound, "not-found")
		wantProblem(t, e.get(t, "/v1/suppressions/ann%40example.org", e.sender), http.StatusNotFound, "not-found")

		other := e.otherProject()
		wantProblem(t, e.get(t, "/v1/suppressions/bob%40example.net", other), http.StatusNotFound, "not-found")
	})
}

func TestSuppressionRefusals(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"bad email", map[string]any{"email": "not an address"}, "/email"},
		{"email with a name", map[string]any{"email": "Ann <ann@example.org>"}, "/email"},
		{"no email", map[string]any{"reason": "manual"}, "/email"},
		{"bad reason", map[string]any{"email": "ann@example.org", "reason": "dislike"}, "/reason"},
		{"unknown field", map[string]any{"email": "ann@example.org", "bogus": 1}, "/bogus"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.post(t, "/v1/suppressions", e.sender, tc.body), 422, "validation", tc.field)
		})
	}
	var list wireList[wireSuppression]
	e.get(t, "/v1/suppressions", e.sender).decode(t, &list)
	if len(list.Data) != 0 {
		t.Errorf("refused requests stored %+v", list.Data)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	e := newEnv(t, store.DialectSQLite, func(c *Config, _ *Deps) { c.RateLimit = 3 })
	limited, retryAfter := 0, 0
	for range 10 {
		r := e.get(t, "/v1/messages", e.sender)
		switch r.Code {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			wantProblem(t, r, http.StatusTooManyRequests, "rate-limited")
			limited++
			n, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || n < 1 {
				t.Errorf("Retry-After %q, want whole seconds ≥ 1", r.Header.Get("Retry-After"))
			}
			retryAfter = n
		default:
			t.Fatalf("status %d: %s", r.Code, r.Body)
		}
	}
	if limited == 0 {
		t.Fatal("10 quick requests at 3/s were never limited")
	}
	t.Logf("%d of 10 limited, Retry-After %d", limited, retryAfter)
	other := e.key(store.DefaultProjectID, apikey.ScopeRead)
	wantCode(t, e.get(t, "/v1/messages", other), http.StatusOK)
}

func TestHealth(t *testing.T) {
	redisDown := errors.New("redis down")
	healthy := true
	e := newEnv(t, store.DialectSQLite, func(_ *Config, d *Deps) {
		// The contract names the checks database and redis only.
		d.Ready = []ReadyCheck{{Name: "redis", Check: func(context.Context) error {
			if healthy {
				return nil
			}
			return redisDown
		}}}
	})
	wantCode(t, e.get(t, "/healthz", ""), http.StatusOK)

	var body wireHealth
	r := e.get(t, "/readyz", "")
	wantCode(t, r, http.StatusOK)
	r.decode(t, &body)
	want := map[string]string{"database": "ok", "redis": "ok"}
	for name, st := range want {
		if body.Checks[name] != st {
			t.Errorf("checks %v, want %s %s", body.Checks, name, st)
		}
	}

	healthy = false
	r = e.get(t, "/readyz", "")
	wantCode(t, r, http.StatusServiceUnavailable)
	body = wireHealth{}
	r.decode(t, &body)
	if body.Checks["redis"] == "ok" || body.Checks["database"] != "ok" || body.Status == "ok" {
		t.Errorf("readyz body %+v, want redis down", body)
	}
	if strings.Contains(string(r.Body), redisDown.Error()) {
		t.Errorf("readyz shows the error text: %s", r.Body)
	}
}

func TestMetricsAfterSend(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	e.send(t, e.sender, message())
	wantCode(t, e.post(t, "/v1/messages", e.sender, with(message(), "to", []string{"bad"})), 422)
	r := e.get(t, "/metrics", "")
	wantCode(t, r, http.StatusOK)
	text := string(r.Body)
	for _, want := range []string{
		`mailgate_messages_accepted_total{domain="shop.example",project="default"} 1`,
		`mailgate_messages_rejected_total{reason="validation"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "ann@example.org") {
		t.Error("/metrics names a recipient")
	}
}

func TestRequestsOutsideTheContract(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := []struct {
		name string
		rq   request
		code int
		slug string
	}{
		{"text body", request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: "{}",
			Header: map[string]string{"Content-Type": "text/plain"}}, http.StatusUnsupportedMediaType, "unsupported-media-type"},
		{"Idempotency-Key over 255", request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: message(),
			Header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, http.StatusUnprocessableEntity, "validation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.do(t, tc.rq), tc.code, tc.slug)
		})
	}
	p := wantProblem(t, e.do(t, cases[1].rq), http.StatusUnprocessableEntity, "validation")
	if !p.hasField("header:Idempotency-Key") {
		t.Errorf("errors %v do not name header:Idempotency-Key", p.fields())
	}
	wantNothingStored(t, e)
}

func TestSuppressionsArePerProject(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	other := e.otherProject()
	wantCode(t, e.post(t, "/v1/suppressions", other, map[string]any{"email": "ann@example.org"}), http.StatusCreated)
	a := e.send(t, e.sender, message())
	if a.Status != store.StatusQueued {
		t.Errorf("another project's suppression applied: %+v", a)
	}
	var list wireList[wireSuppression]
	e.get(t, "/v1/suppressions", e.sender).decode(t, &list)
	if len(list.Data) != 0 {
		t.Errorf("another project's suppressions are listed: %+v", list.Data)
	}
}

func TestBodyOverLimit(t *testing.T) {
	e := newEnv(t, store.DialectSQLite, func(c *Config, _ *Deps) { c.BodyLimit = 4096 })
	big := with(message(), "text", strings.Repeat("a", 8192))
	wantProblem(t, e.post(t, "/v1/messages", e.sender, big), http.StatusRequestEntityTooLarge, "too-large")
	wantProblem(t, e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": []any{big}}),
		http.StatusRequestEntityTooLarge, "too-large")
	wantNothingStored(t, e)
}
