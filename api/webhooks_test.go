package api

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/dnscheck/dnstest"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/webhook"
)

// The wire shapes of the webhook routes, written from openapi.yaml.

type wireWebhook struct {
	ID                      string   `json:"id"`
	URL                     string   `json:"url"`
	Events                  []string `json:"events"`
	Tags                    []string `json:"tags"`
	Description             string   `json:"description"`
	Enabled                 bool     `json:"enabled"`
	DisabledReason          string   `json:"disabled_reason"`
	FailingSince            *string  `json:"failing_since"`
	PreviousSecretExpiresAt *string  `json:"previous_secret_expires_at"`
	Secret                  string   `json:"secret"`
}

type wireDelivery struct {
	ID            string  `json:"id"`
	EventID       *string `json:"event_id"`
	Status        string  `json:"status"`
	Attempts      int     `json:"attempts"`
	NextAttemptAt *string `json:"next_attempt_at"`
}

// hookEnv is a test server with a keyring and a webhook guard allowing
// plain http, whose resolver is a DNS server on loopback; hooks is a key
// with the webhooks scope in the default project.
type hookEnv struct {
	*testEnv
	kr    *keyring.Keyring
	dns   *dnstest.Server
	hooks string
}

func newHookEnv(t *testing.T, engine string) *hookEnv {
	t.Helper()
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t)
	e := newEnv(t, engine, func(_ *Config, d *Deps) {
		d.Keyring = kr
		d.Webhooks = webhook.New(webhook.Config{AllowHTTP: true, Resolver: dnscheck.NewResolver(dns.Addr)})
	})
	return &hookEnv{testEnv: e, kr: kr, dns: dns, hooks: e.key(store.DefaultProjectID, apikey.ScopeWebhooks)}
}

func (e *hookEnv) create(t *testing.T, body any) wireWebhook {
	t.Helper()
	r := e.post(t, "/v1/webhooks", e.hooks, body)
	wantCode(t, r, http.StatusCreated)
	var w wireWebhook
	r.decode(t, &w)
	return w
}

// TestWebhookGuardAtCreate: a URL the SSRF guard refuses is a 422 on
// /url naming the rule, never the address a name resolved to. Nothing is
// dialled: literal addresses are judged as written, names through the
// test's DNS server.
func TestWebhookGuardAtCreate(t *testing.T) {
	e := newHookEnv(t, store.DialectSQLite)
	e.dns.AddIP("internal.test.", net.ParseIP("127.0.0.1"))
	e.dns.AddIP("meta.test.", net.ParseIP("169.254.169.254"))
	tests := []struct{ url, rule string }{
		{"http://127.0.0.1:8080/hooks", "loopback"},
		{"http://[::1]:8080/hooks", "loopback"},
		{"http://internal.test:8080/hooks", "loopback"},
		{"http://meta.test/latest", "link-local"},
		{"https://10.0.0.1/", "private"},
		{"https://[::ffff:10.0.0.1]/", "private"},
		{"https://100.64.0.1/", "carrier-grade NAT"},
		{"https://0.0.0.0/", "unspecified"},
		{"ftp://hooks.example/", "scheme"},
		{"https://user:pw@hooks.example/", "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r := e.post(t, "/v1/webhooks", e.hooks, map[string]any{"url": tt.url})
			p := wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "/url")
			msg := p.Errors[0].Message
			if !strings.Contains(msg, tt.rule) {
				t.Errorf("message %q does not name the rule %q", msg, tt.rule)
			}
			if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "169.254") {
				t.Errorf("message %q tells the resolved address", msg)
			}
		})
	}
	if n := count(t, e.sqlDB(), `SELECT count(*) FROM webhook_endpoints`); n != 0 {
		t.Errorf("%d endpoints stored", n)
	}
}

// TestWebhookRoutes: the endpoint's life through the API, the secret
// shown only on create and rotate, its seal opening with the master key.
func TestWebhookRoutes(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newHookEnv(t, engine)
		r := e.post(t, "/v1/webhooks", e.sender, map[string]any{"url": "https://93.184.215.14/hooks"})
		wantProblem(t, r, http.StatusForbidden, "forbidden")

		w := e.create(t, map[string]any{"url": "https://93.184.215.14/hooks", "events": []string{"message.bounced"},
			"description": "crm"})
		if !webhook.ValidSecret(w.Secret) || !w.Enabled || w.Events[0] != "message.bounced" || len(w.Tags) != 0 {
			t.Fatalf("created %+v", w)
		}
		ep, err := e.store.WebhookEndpoint(t.Context(), store.DefaultProjectID, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if plain, err := e.kr.Open(ep.SecretSealed, webhook.SealAAD(w.ID)); err != nil || string(plain) != w.Secret {
			t.Fatalf("sealed secret opens to %q, %v", plain, err)
		}
		var got wireWebhook
		e.get(t, "/v1/webhooks/"+w.ID, e.hooks).decode(t, &got)
		if got.Secret != "" || got.URL != w.URL {
			t.Fatalf("get %+v", got)
		}
		var list wireList[wireWebhook]
		e.get(t, "/v1/webhooks", e.hooks).decode(t, &list)
		if len(list.Data) != 1 {
			t.Fatalf("list %+v", list)
		}
		r = e.do(t, request{Method: http.MethodPatch, Path: "/v1/webhooks/" + w.ID, Token: e.hooks,
			Body: map[string]any{"enabled": false, "tags": []string{"vip"}, "events": []string{}}})
		wantCode(t, r, http.StatusOK)
		r.decode(t, &got)
		if got.Enabled || got.Tags[0] != "vip" || len(got.Events) != 0 {
			t.Fatalf("patched %+v", got)
		}
		r = e.do(t, request{Method: http.MethodPatch, Path: "/v1/webhooks/" + w.ID, Token: e.hooks,
			Body: map[string]any{"url": "http://127.0.0.1/"}})
		wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "/url")

		r = e.post(t, "/v1/webhooks/"+w.ID+"/rotate-secret", e.hooks, nil)
		wantCode(t, r, http.StatusOK)
		var rotated wireWebhook
		r.decode(t, &rotated)
		want := timeString(e.clock.Now().Add(24 * time.Hour))
		if rotated.Secret == w.Secret || !webhook.ValidSecret(rotated.Secret) || rotated.PreviousSecretExpiresAt == nil ||
			*rotated.PreviousSecretExpiresAt != want {
			t.Fatalf("rotated %+v, want previous until %s", rotated, want)
		}

		r = e.post(t, "/v1/webhooks/"+w.ID+"/test", e.hooks, nil)
		wantCode(t, r, http.StatusAccepted)
		var d wireDelivery
		r.decode(t, &d)
		if d.Status != store.DeliveryPending || d.EventID != nil {
			t.Fatalf("test delivery %+v", d)
		}
		var ds wireList[wireDelivery]
		e.get(t, "/v1/webhooks/"+w.ID+"/deliveries?status=pending", e.hooks).decode(t, &ds)
		if len(ds.Data) != 1 || ds.Data[0].ID != d.ID {
			t.Fatalf("deliveries %+v", ds)
		}
		wantProblem(t, e.get(t, "/v1/webhooks/"+w.ID+"/deliveries?status=bogus", e.hooks), http.StatusUnprocessableEntity,
			"validation", "query:status")
		e.get(t, "/v1/webhooks/"+w.ID+"/deliveries?status=delivered", e.hooks).decode(t, &ds)
		if len(ds.Data) != 0 {
			t.Fatalf("delivered %+v", ds)
		}
		var detail struct {
			wireDelivery
			AttemptLog []map[string]any `json:"attempt_log"`
		}
		e.get(t, "/v1/webhooks/"+w.ID+"/deliveries/"+d.ID, e.hooks).decode(t, &detail)
		if detail.ID != d.ID || detail.AttemptLog == nil || len(detail.AttemptLog) != 0 {
			t.Fatalf("delivery detail %+v", detail)
		}
		wantProblem(t, e.get(t, "/v1/webhooks/"+w.ID+"/deliveries/nope", e.hooks), http.StatusNotFound, "not-found")
		wantProblem(t, e.get(t, "/v1/webhooks/"+w.ID+"/deliveries/"+d.ID, e.key(e.project("third"), apikey.ScopeWebhooks)),
			http.StatusNotFound, "not-found")
		wantCode(t, e.post(t, "/v1/webhooks/"+w.ID+"/deliveries/"+d.ID+"/retry", e.hooks, nil), http.StatusAccepted)
		wantProblem(t, e.post(t, "/v1/webhooks/"+w.ID+"/deliveries/nope/retry", e.hooks, nil), http.StatusNotFound, "not-found")

		r = e.post(t, "/v1/webhooks/"+w.ID+"/replay", e.hooks, map[string]any{
			"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"})
		wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "/until")
		r = e.post(t, "/v1/webhooks/"+w.ID+"/replay", e.hooks, map[string]any{
			"since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"})
		wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "/until")
		r = e.post(t, "/v1/webhooks/"+w.ID+"/replay", e.hooks, map[string]any{"until": "2027-01-01T00:00:00Z"})
		wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "/since")
		r = e.post(t, "/v1/webhooks/"+w.ID+"/replay", e.hooks, map[string]any{
			"since": "2026-11-30T00:00:00Z", "until": "2026-12-07T00:00:00Z"})
		wantCode(t, r, http.StatusAccepted)

		other := e.key(e.project("other"), apikey.ScopeWebhooks)
		wantProblem(t, e.get(t, "/v1/webhooks/"+w.ID, other), http.StatusNotFound, "not-found")
		wantCode(t, e.do(t, request{Method: http.MethodDelete, Path: "/v1/webhooks/" + w.ID, Token: e.hooks}), http.StatusNoContent)
		wantProblem(t, e.get(t, "/v1/webhooks/"+w.ID, e.hooks), http.StatusNotFound, "not-found")
	})
}

// TestEventsCarryWebhookData: the event log shows the data a webhook
// delivery carries: the message's tags and metadata and the sequence.
func TestEventsCarryWebhookData(t *testing.T) {
	e := newHookEnv(t, store.DialectSQLite)
	sent := e.send(t, e.sender, with(message(), "tags", []string{"order"}, "metadata", map[string]string{"cart": "42"}))
	var evs wireList[wireEvent]
	e.get(t, "/v1/events?message_id="+sent.ID, e.sender).decode(t, &evs)
	if len(evs.Data) == 0 {
		t.Fatal("no events")
	}
	var data map[string]any
	if err := json.Unmarshal(evs.Data[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if data["message_id"] != sent.ID || data["sequence"] != float64(1) || data["recipient"] == nil ||
		data["tags"].([]any)[0] != "order" || data["metadata"].(map[string]any)["cart"] != "42" {
		t.Errorf("event data %v", data)
	}
}
