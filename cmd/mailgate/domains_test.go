package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/dnscheck/dnstest"
)

// TestDomainsVerifyLookupFailed: `domains verify` against a running API
// says MISSING for records DNS says are absent, and LOOKUP FAILED (with
// the resolver's error), not MISSING, once the resolver is down; both fail
// the command, the second saying the lookup failed rather than asking to
// publish.
func TestDomainsVerifyLookupFailed(t *testing.T) {
	adminEnv(t)
	dns := dnstest.Start(t)
	t.Setenv("MAILGATE_DNS_SERVER", dns.Addr)
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
	token := strings.TrimSpace(runCLI(t, "keys", "create", "--name", "dns", "--scope", "domains"))
	flags := []string{"--api-url", api.URL, "--api-key", token}
	runCLI(t, append([]string{"domains", "create", "shop.example"}, flags...)...)
	verify := append([]string{"domains", "verify", "shop.example"}, flags...)

	out, err := execCLI(t, verify...)
	rows := verifyRows(t, out)
	if err == nil || !strings.Contains(err.Error(), "publish") || strings.Contains(err.Error(), "lookup failed") {
		t.Errorf("nothing published: error %v, want it to ask to publish", err)
	}
	for _, row := range rows {
		if !strings.HasPrefix(row, "MISSING ") {
			t.Errorf("nothing published: row %q, want MISSING", row)
		}
	}

	dns.Stop()
	out, err = execCLI(t, verify...)
	rows = verifyRows(t, out)
	if err == nil || !strings.Contains(err.Error(), "lookup failed") || strings.Contains(err.Error(), "publish") {
		t.Errorf("resolver down: error %v, want it to say the lookup failed", err)
	}
	for _, row := range rows {
		if !strings.HasPrefix(row, "LOOKUP FAILED ") || !strings.Contains(row, dns.Addr) {
			t.Errorf("resolver down: row %q, want LOOKUP FAILED with the resolver's error", row)
		}
	}
}

// verifyRows are the record rows of `domains verify`'s table, which a
// blank line and the domain's status follow (pending here: nothing found).
func verifyRows(t *testing.T, out string) []string {
	t.Helper()
	table, status, _ := strings.Cut(strings.TrimSpace(out), "\n\n")
	lines := strings.Split(table, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "STATE ") || !strings.HasPrefix(status, "shop.example is pending ") {
		t.Fatalf("domains verify printed:\n%s", out)
	}
	return lines[1:]
}
