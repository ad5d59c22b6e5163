package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// adminEnv points the database commands at a fresh SQLite database and at
// the test Redis (revocations are published there).
func adminEnv(t *testing.T) {
	t.Setenv("MAILGATE_DATABASE_URL", testsvc.SQLiteURL(t))
	t.Setenv("MAILGATE_REDIS_URL", testsvc.RedisURLDB(t, metricsRedisDB))
	t.Setenv("MAILGATE_CONFIG_FILE", "")
}

// TestKeysCommands: keys list names the project and joins the scopes with
// commas, as a table and as JSON; revoke says what it did; an unknown
// project or key is named once.
func TestKeysCommands(t *testing.T) {
	adminEnv(t)
	runCLI(t, "projects", "create", "shop")
	runCLI(t, "keys", "create", "--name", "ci", "--project", "shop", "--scope", "messages:send", "--scope", "messages:read")

	out := runCLI(t, "keys", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("keys list printed %d lines, want a header and one key:\n%s", len(lines), out)
	}
	if got, want := strings.Fields(lines[0]), []string{"ID", "NAME", "PROJECT", "SCOPES", "CREATED", "REVOKED"}; !cmp.Equal(got, want) {
		t.Errorf("header %v, want %v", got, want)
	}
	row := strings.Fields(lines[1])
	if got, want := row[1:4], []string{"ci", "shop", "messages:send,messages:read"}; !cmp.Equal(got, want) {
		t.Errorf("row %v, want name, project and scopes %v", row, want)
	}

	var keys []keyView
	if err := json.Unmarshal([]byte(runCLI(t, "keys", "list", "--json", "--project", "shop")), &keys); err != nil {
		t.Fatalf("keys list --json: %v", err)
	}
	if len(keys) != 1 || keys[0].Project != "shop" || !cmp.Equal(keys[0].Scopes, []string{"messages:send", "messages:read"}) {
		t.Errorf("keys list --json = %+v", keys)
	}

	id := keys[0].ID
	if got, want := runCLI(t, "keys", "revoke", id), "revoked key "+id+" (ci)\n"; got != want {
		t.Errorf("keys revoke printed %q, want %q", got, want)
	}
	if got := runCLI(t, "keys", "revoke", id); !strings.Contains(got, "already revoked") {
		t.Errorf("revoking again printed %q, want it to say the key was already revoked", got)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "list", "--project", "nope"}, `project "nope": not found`},
		{[]string{"keys", "create", "--name", "x", "--scope", "admin", "--project", "nope"}, `project "nope": not found`},
		{[]string{"keys", "revoke", "nope"}, `key nope: not found`},
		{[]string{"projects", "create", "shop"}, `project "shop" exists`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := execCLI(t, tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestListCommandsPrintJSON: every database command that prints a table
// prints a JSON array with --json.
func TestListCommandsPrintJSON(t *testing.T) {
	adminEnv(t)
	for _, args := range [][]string{{"projects", "list"}, {"keys", "list"}, {"migrate", "status"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var v []map[string]any
			out := runCLI(t, append(args, "--json")...)
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("not a JSON array: %v\n%s", err, out)
			}
		})
	}
}

// TestDomainsDeleteConfirms: domains delete says what it deleted once the
// API answered 204, and passes the API's refusal on otherwise.
func TestDomainsDeleteConfirms(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete || r.URL.Path != "/v1/domains/shop.example" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"title":"Not found","status":404,"detail":"domain not found"}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	flags := []string{"--api-url", srv.URL, "--api-key", "mg_test"}
	got := runCLI(t, append([]string{"domains", "delete", "shop.example"}, flags...)...)
	if want := "deleted domain shop.example and its DKIM keys\n"; got != want {
		t.Errorf("domains delete printed %q, want %q", got, want)
	}
	if out, err := execCLI(t, append([]string{"domains", "delete", "other.example"}, flags...)...); err == nil || out != "" {
		t.Errorf("deleting an unknown domain: output %q, error %v; want no output and an error", out, err)
	}
}
