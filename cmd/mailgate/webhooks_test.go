package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebhooksCLI: `mailgate webhooks` against a running API creates an
// endpoint (printing its secret once), refuses a loopback URL naming the
// rule, lists it, queues a test event and shows it in the delivery log.
func TestWebhooksCLI(t *testing.T) {
	adminEnv(t)
	t.Setenv("MAILGATE_WEBHOOK_ALLOW_HTTP", "true")
	a, err := newApp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	srv, err := a.apiServer()
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	token := strings.TrimSpace(runCLI(t, "keys", "create", "--name", "hooks", "--scope", "webhooks"))
	flags := []string{"--api-url", api.URL, "--api-key", token}

	if _, err := execCLI(t, append([]string{"webhooks", "create", "http://127.0.0.1:9/hooks"}, flags...)...); err == nil ||
		!strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "/url") {
		t.Errorf("loopback URL: %v, want a refusal naming the rule", err)
	}
	var created struct{ ID, Secret string }
	out := runCLI(t, append([]string{"webhooks", "create", "https://93.184.215.14/hooks", "--events", "message.sent,message.bounced"}, flags...)...)
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create printed %q (%v)", out, err)
	}
	if list := runCLI(t, append([]string{"webhooks", "list"}, flags...)...); !strings.Contains(list, created.ID) ||
		!strings.Contains(list, "message.sent,message.bounced") || strings.Contains(list, "whsec_") {
		t.Errorf("list:\n%s", list)
	}
	runCLI(t, append([]string{"webhooks", "test", created.ID}, flags...)...)
	if log := runCLI(t, append([]string{"webhooks", "deliveries", created.ID}, flags...)...); !strings.Contains(log, "pending") {
		t.Errorf("deliveries:\n%s", log)
	}
	if out := runCLI(t, append([]string{"webhooks", "update", created.ID, "--disable"}, flags...)...); !strings.Contains(out, `"enabled": false`) {
		t.Errorf("update --disable:\n%s", out)
	}
}
