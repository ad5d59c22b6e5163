package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	mailgate "github.com/mailgate/mailgate"
)

func TestLoadSpec(t *testing.T) {
	spec, router, err := loadSpec(mailgate.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.OpenAPI; !strings.HasPrefix(got, "3.1") {
		t.Errorf("contract version %q, want 3.1.x", got)
	}
	if len(spec.Servers) != 0 {
		t.Errorf("servers not cleared: %v", spec.Servers)
	}
	for _, route := range []string{"POST /v1/messages", "GET /v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65",
		"POST /v1/messages/batch", "GET /v1/events", "DELETE /v1/suppressions/ann@example.org",
		"GET /v1/keys", "POST /v1/projects", "GET /healthz", "GET /readyz", "GET /metrics"} {
		method, path, _ := strings.Cut(route, " ")
		if _, _, err := router.FindRoute(httptest.NewRequest(method, "http://anyhost:1234"+path, nil)); err != nil {
			t.Errorf("%s: %v", route, err)
		}
	}
}

func TestLoadSpecRejectsBrokenContract(t *testing.T) {
	broken := bytes.Replace(mailgate.OpenAPI, []byte("$ref: '#/components/schemas/MessageAccepted'"),
		[]byte("$ref: '#/components/schemas/NoSuchSchema'"), 1)
	if _, _, err := loadSpec(broken); err == nil {
		t.Error("loadSpec accepted a contract with a dangling $ref")
	}
}

// validatorApp is a tiny echo app with the validator in front of dummy
// handlers; seen receives the body the send handler read.
func validatorApp(t testing.TB, bodyLimit string, seen *[]byte) *echo.Echo {
	t.Helper()
	spec, router, err := loadSpec(mailgate.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(slog.DiscardHandler), nil)
	e.Use(middleware.BodyLimit(bodyLimit))
	v1 := e.Group("/v1", openAPIValidator(spec, router, nil))
	v1.POST("/messages", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		*seen = body
		return c.JSONBlob(http.StatusAccepted, []byte(`{"id":"0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65",`+
			`"status":"queued","recipients":[{"email":"ann@example.org","status":"queued"}]}`))
	})
	ok := func(c echo.Context) error { return c.JSONBlob(http.StatusOK, []byte(`{"data":[],"next_cursor":null}`)) }
	v1.POST("/messages/batch", ok)
	v1.GET("/messages", ok)
	v1.GET("/messages/:id", ok)
	return e
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/openapi/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func batchOf(n int) string {
	one := `{"from":"a@shop.example","to":["b@example.org"],"text":"hi"}`
	return `{"messages":[` + strings.TrimSuffix(strings.Repeat(one+",", n), ",") + `]}`
}

func TestOpenAPIValidator(t *testing.T) {
	valid := string(readFixture(t, "message.json"))
	var seen []byte
	e := validatorApp(t, "64KB", &seen)
	tests := []struct {
		name, method, target, contentType, body string
		status                                  int
		problem                                 string   // slug of the problem type
		fields                                  []string // FieldError.Field values
	}{
		{"valid", "POST", "/v1/messages", "application/json", valid, 202, "", nil},
		{"charset", "POST", "/v1/messages", "application/json; charset=utf-8", valid, 202, "", nil},
		{"malformed", "POST", "/v1/messages", "application/json", `{"from": "a@b.c",`, 400, "malformed", nil},
		{"empty body", "POST", "/v1/messages", "application/json", ``, 400, "malformed", nil},
		{"to not array", "POST", "/v1/messages", "application/json", `{"from":"a@b.c","to":"x"}`, 422, "validation", []string{"/to"}},
		{"unknown property", "POST", "/v1/messages", "application/json", `{"from":"a@b.c","bogus":1}`, 422, "validation", []string{"/bogus"}},
		{"missing from", "POST", "/v1/messages", "application/json", `{"to":["b@example.org"]}`, 422, "validation", []string{"/from"}},
		{"many at once", "POST", "/v1/messages", "application/json",
			`{"from":"a@b.c","to":[1],"subject":5,"tags":["ok",""],"x":1,"y":2}`, 422, "validation",
			[]string{"/subject", "/tags/1", "/to/0", "/x", "/y"}},
		{"nested", "POST", "/v1/messages", "application/json",
			`{"from":"a@b.c","headers":{"X/Y~":1},"attachments":[{"filename":"a","content_type":"a/b","content":"AA==","extra":1},{"filename":"b"}]}`,
			422, "validation",
			[]string{"/attachments/0/extra", "/attachments/1/content", "/attachments/1/content_type", "/headers/X~1Y~0"}},
		{"not an object", "POST", "/v1/messages", "application/json", `[1]`, 422, "validation", []string{""}},
		{"text/plain", "POST", "/v1/messages", "text/plain", valid, 415, "unsupported-media-type", nil},
		{"no content type", "POST", "/v1/messages", "", valid, 415, "unsupported-media-type", nil},
		{"too large", "POST", "/v1/messages", "application/json",
			`{"from":"a@b.c","text":"` + strings.Repeat("x", 70_000) + `"}`, 413, "too-large", nil},
		{"batch of 500", "POST", "/v1/messages/batch", "application/json", batchOf(500), 200, "", nil},
		{"batch of 501", "POST", "/v1/messages/batch", "application/json", batchOf(501), 422, "validation", []string{"/messages"}},
		{"bad batch item left to the handler", "POST", "/v1/messages/batch", "application/json",
			`{"messages":[{"from":"a@b.c"},{"bogus":1}]}`, 200, "", nil},
		{"batch item not an object", "POST", "/v1/messages/batch", "application/json",
			`{"messages":[{"from":"a@b.c"},1]}`, 422, "validation", []string{"/messages/1"}},
		{"empty batch", "POST", "/v1/messages/batch", "application/json", `{"messages":[]}`, 422, "validation", []string{"/messages"}},
		{"list", "GET", "/v1/messages?limit=100&status=partial", "", "", 200, "", nil},
		{"limit too big", "GET", "/v1/messages?limit=101", "", "", 422, "validation", []string{"query:limit"}},
		{"limit not a number", "GET", "/v1/messages?limit=abc", "", "", 422, "validation", []string{"query:limit"}},
		{"bad status and since", "GET", "/v1/messages?status=lost&since=yesterday", "", "", 422, "validation",
			[]string{"query:since", "query:status"}},
		{"id of another shape", "GET", "/v1/messages/42", "", "", 200, "", nil},
		{"id too long", "GET", "/v1/messages/" + strings.Repeat("a", 65), "", "", 422, "validation", []string{"path:id"}},
		{"good id", "GET", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", "", "", 200, "", nil},
		{"not in contract", "GET", "/v1/nope", "", "", 404, "not-found", nil},
		{"idempotency key too long", "POST", "/v1/messages", "application/json", valid, 422, "validation",
			[]string{"header:Idempotency-Key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set(echo.HeaderContentType, tt.contentType)
			}
			if strings.HasPrefix(tt.name, "idempotency") {
				req.Header.Set("Idempotency-Key", strings.Repeat("k", 256))
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 202 && string(seen) != tt.body {
				t.Errorf("handler read %q, want the body as sent", truncate(seen, 200))
			}
			if tt.problem == "" {
				return
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body %s: %v", rec.Body, err)
			}
			if p.Type != problemType+tt.problem {
				t.Errorf("problem type %q, want …%s", p.Type, tt.problem)
			}
			var fields []string
			for _, f := range p.Errors {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("field %q has no message", f.Field)
				}
			}
			if diff := cmp.Diff(tt.fields, fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if tt.target != "/v1/nope" {
				checkResponse(t, httptest.NewRequest(tt.method, tt.target, nil), rec.Code, rec.Header(), rec.Body.Bytes())
			}
		})
	}
}

func TestOpenAPIValidatorMessages(t *testing.T) {
	var seen []byte
	e := validatorApp(t, "4KB", &seen)
	req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(`{"from":"a@b.c","bogus":1,"cc":["x"],"tags":[]}`))
	req.Header.Set(echo.HeaderContentType, "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	want := []FieldError{{Field: "/bogus", Message: "unknown property"}}
	if diff := cmp.Diff(want, p.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// TestRequestViewAgreesWithContract checks that the request view
// (loadRequestView: version 3.0.3, no security) reaches the same verdicts
// as kin-openapi's JSON Schema 2020-12 validation of the contract as written.
func TestRequestViewAgreesWithContract(t *testing.T) {
	spec, fullRouter := loadContract(t)
	_, viewRouter, err := loadSpec(mailgate.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	bodies := []string{
		string(readFixture(t, "message.json")),
		`{"from":"a@b.c","to":"x","bogus":1,"tags":[1,"` + strings.Repeat("t", 129) + `"]}`,
		`{"from":"","send_at":"tomorrow","metadata":{"k":{"n":1}},"headers":{"a":null}}`,
		`{"from":"a@b.c","attachments":[{"filename":"a"}],"cc":` + fmt.Sprint(make([]int, 51)) + `}`,
		`{"from":"a@b.c","subject":"` + strings.Repeat("s", 999) + `","reply_to":5}`,
	}
	for i, body := range bodies {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got := func(full bool) []FieldError {
				req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(body))
				req.Header.Set(echo.HeaderContentType, "application/json")
				router := viewRouter
				if full {
					router = fullRouter
				}
				route, params, err := router.FindRoute(req)
				if err != nil {
					t.Fatal(err)
				}
				err = openapi3filter.ValidateRequest(req.Context(), &openapi3filter.RequestValidationInput{
					Request: req, PathParams: params, Route: route,
					Options: &openapi3filter.Options{MultiError: true, SkipSettingDefaults: true,
						AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
						SchemaValidationOptions: spec.GetSchemaValidationOptions()},
				})
				if err == nil {
					return nil
				}
				p, ok := requestProblem(err).(*Problem)
				if !ok {
					t.Fatalf("not a problem: %v", err)
				}
				return p.Errors
			}
			if diff := cmp.Diff(got(true), got(false)); diff != "" {
				t.Errorf("request view disagrees with the 3.1 contract (-3.1 +view):\n%s", diff)
			}
		})
	}
}

// recordingTB is a testing.TB that records failures instead of failing.
type recordingTB struct {
	testing.TB
	failures []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func TestCheckResponse(t *testing.T) {
	message := func(smtpCode string) string {
		return `{"id":"0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65","status":"sent","from":"a@shop.example",` +
			`"subject":"hi","tags":[],"metadata":{},"send_at":null,"possibly_duplicated":false,` +
			`"created_at":"2026-11-26T10:00:00Z","updated_at":"2026-11-26T10:00:01Z",` +
			`"recipients":[{"email":"b@example.org","kind":"to","status":"sent","smtp_code":` + smtpCode +
			`,"smtp_response":null,"updated_at":"2026-11-26T10:00:01Z"}],"events":[]}`
	}
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name   string
		target string
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"message", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 200, jsonHeader, message("250"), true},
		{"null smtp code", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 200, jsonHeader, message("null"), true},
		{"string smtp code", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 200, jsonHeader, message(`"250"`), false},
		{"extra field", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 200, jsonHeader,
			strings.Replace(message("250"), `"events"`, `"secret":"x","events"`, 1), false},
		{"undocumented status", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 418, jsonHeader, message("250"), false},
		{"problem", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 404,
			http.Header{"Content-Type": {"application/problem+json"}},
			`{"type":"https://mailgate.dev/problems/not-found","title":"Not found","status":404,"detail":"message not found"}`, true},
		{"problem as plain json", "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 404, jsonHeader,
			`{"type":"https://mailgate.dev/problems/not-found","title":"Not found","status":404}`, false},
		{"revoke", "/v1/keys/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", 204, http.Header{}, ``, true},
		{"readyz down", "/readyz", 503, jsonHeader, `{"status":"unavailable","checks":{"database":"ok","redis":"timeout"}}`, true},
		{"metrics", "/metrics", 200, http.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8"}}, "up 1\n", true},
		{"not a route", "/v2/messages", 200, jsonHeader, `{}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "GET"
			if tt.name == "revoke" {
				method = "DELETE"
			}
			rec := &recordingTB{TB: t}
			checkResponse(rec, httptest.NewRequest(method, tt.target, nil), tt.status, tt.header, []byte(tt.body))
			if ok := len(rec.failures) == 0; ok != tt.ok {
				t.Errorf("checkResponse passed=%v, want %v; failures: %v", ok, tt.ok, rec.failures)
			}
		})
	}
}

// BenchmarkOpenAPIValidator measures the middleware on a ~2 KB message
// (the handler does nothing).
func BenchmarkOpenAPIValidator(b *testing.B) {
	spec, router, err := loadSpec(mailgate.OpenAPI)
	if err != nil {
		b.Fatal(err)
	}
	body := readFixture(b, "message.json")
	mw := openAPIValidator(spec, router, nil)(func(echo.Context) error { return nil })
	e := echo.New()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/messages", bytes.NewReader(body))
		req.Header.Set(echo.HeaderContentType, "application/json")
		if err := mw(e.NewContext(req, httptest.NewRecorder())); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRequestValidatorAgreesWithOpenapi3filter: the validator, which
// decodes JSON bodies by the fast path, reaches the verdicts and
// messages of openapi3filter.ValidateRequest decoding them itself.
func TestRequestValidatorAgreesWithOpenapi3filter(t *testing.T) {
	spec, router, err := loadSpec(mailgate.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	v := newRequestValidator(spec)
	message := string(readFixture(t, "message.json"))
	tests := []struct{ target, body string }{
		{"/v1/messages", message},
		{"/v1/messages", ``},
		{"/v1/messages", `{"from": "a@b.c",`},
		{"/v1/messages", `{"from":"a@b.c","to":"x","bogus":1,"tags":[1,""],"subject":5}`},
		{"/v1/messages", `{"from":"a@b.c","subject":"a","subject":7}`},
		{"/v1/messages", "{\"from\":\"a@b.c\",\"subject\":\"caf\xe9\"}"},
		{"/v1/messages", `{"from":"a@b.c","text":1e999}`},
		{"/v1/messages", `{"FROM":"a@b.c","text":"x"}`},
		{"/v1/messages", `[1]`},
		{"/v1/messages", `{"from":"a@b.c"} trailing`},
		{"/v1/messages", `{"from":"a@b.c","attachments":[{"filename":"a","content_type":"a/b","content":"AA==","extra":1},{"filename":"b"}]}`},
		{"/v1/messages?x=1", `{"from":"a@b.c","headers":{"X/Y~":1}}`},
		{"/v1/messages/batch", batchOf(3)},
		{"/v1/messages/batch", batchOf(501)},
		{"/v1/messages/batch", `{"messages":[{"from":"a@b.c"},1,null]}`},
		{"/v1/messages/batch", `{"messages":[]}`},
		{"/v1/domains", `{"name":"shop.example","dkim":{"algorithms":["rsa","ed25519"],"selector":"s1"}}`},
		{"/v1/domains", `{"name":5,"dkim":{"algorithms":["dsa"]}}`},
		{"/v1/suppressions", `{"email":"a@b.c","reason":"manual"}`},
		{"/v1/suppressions", `{"email":1,"reason":"lost","x":null}`},
		{"/v1/keys", `{"name":"k","scopes":["messages:send"],"rate_limit":12345678901234567890}`},
		{"/v1/keys", `{"name":"k","scopes":["nope"],"rate_limit":-1.5}`},
	}
	for _, tt := range tests {
		t.Run(tt.target+" "+string(truncate([]byte(tt.body), 60)), func(t *testing.T) {
			outcome := func(fast bool) string {
				req := httptest.NewRequest("POST", tt.target, strings.NewReader(tt.body))
				req.Header.Set(echo.HeaderContentType, "application/json")
				route, params, err := router.FindRoute(req)
				if err != nil {
					t.Fatal(err)
				}
				input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: v.all}
				if fast {
					err = v.validate(req.Context(), input)
				} else {
					err = openapi3filter.ValidateRequest(req.Context(), input)
				}
				rest, _ := io.ReadAll(req.Body)
				if string(rest) != tt.body {
					t.Errorf("the body was not put back for the handler")
				}
				if err == nil {
					return "valid"
				}
				return fmt.Sprintf("%+v", requestProblem(err))
			}
			if diff := cmp.Diff(outcome(false), outcome(true)); diff != "" {
				t.Errorf("verdicts differ (-openapi3filter +validator):\n%s", diff)
			}
		})
	}
}
