package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/dnscheck/dnstest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// run runs `mailgate args…` with extra environment and returns its
// stdout, stderr and exit error, whatever the exit status.
func (g *gateway) run(extraEnv []string, args ...string) (string, string, error) {
	g.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(mailgateBin, args...)
	cmd.Env = append(append([]string{}, g.env...), extraEnv...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestDomainsCLI: `mailgate domains` drives a running gateway's API with a
// domains key: create prints the records to publish, verify fails until
// they are in DNS (a DNS server on loopback) and passes after, rotate adds
// selectors, a bad name is refused naming the field, delete removes it.
func TestDomainsCLI(t *testing.T) {
	dns := dnstest.Start(t)
	g := newGateway(t, testsvc.SQLiteURL(t), "MAILGATE_DNS_SERVER="+dns.Addr,
		"MAILGATE_RELAYS=smtp://relay.example:587?tls=starttls")
	api := g.start("api")
	env := []string{"MAILGATE_API_URL=" + api.base, "MAILGATE_API_KEY=" + g.createKey("domains")}
	mustRun := func(args ...string) string {
		t.Helper()
		out, stderr, err := g.run(env, args...)
		if err != nil {
			t.Fatalf("mailgate %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}

	created := mustRun("domains", "create", "shop.example", "--json")
	var d struct {
		DNSRecords []struct{ Type, Name, Value string } `json:"dns_records"`
	}
	if err := json.Unmarshal([]byte(created), &d); err != nil || len(d.DNSRecords) != 5 {
		t.Fatalf("domains create --json printed %q (%v), want the domain with 5 records", created, err)
	}
	table := mustRun("domains", "show", "shop.example")
	for _, r := range d.DNSRecords {
		if !strings.Contains(table, r.Name) || !strings.Contains(table, r.Value) {
			t.Errorf("domains show lacks %s %s %q:\n%s", r.Type, r.Name, r.Value, table)
		}
	}
	if list := mustRun("domains", "list"); !strings.Contains(list, "shop.example") {
		t.Errorf("domains list:\n%s", list)
	}

	out, _, err := g.run(env, "domains", "verify", "shop.example")
	if err == nil || rowsInState(out, "MISSING") != 5 {
		t.Fatalf("verify with nothing published: err %v, output:\n%s", err, out)
	}
	for _, r := range d.DNSRecords {
		switch r.Type {
		case "TXT":
			dns.AddTXT(r.Name, r.Value)
		case "MX":
			dns.AddMX(r.Name, 10, strings.Fields(r.Value)[1])
		}
	}
	if out := mustRun("domains", "verify", "shop.example"); rowsInState(out, "OK") != 5 || rowsInState(out, "MISSING") != 0 {
		t.Fatalf("verify with everything published:\n%s", out)
	}

	rotated := mustRun("domains", "rotate", "shop.example")
	if n := strings.Count(rotated, "._domainkey.shop.example"); n != 4 {
		t.Errorf("after rotate, %d DKIM records to publish, want 4 (old and new, both algorithms):\n%s", n, rotated)
	}

	_, stderr, err := g.run(env, "domains", "create", "not a domain")
	if err == nil || !strings.Contains(stderr, "422") || !strings.Contains(stderr, "/name") {
		t.Errorf("create of a bad name: err %v, stderr %q; want a 422 naming /name", err, stderr)
	}
	if _, stderr, err := g.run([]string{"MAILGATE_API_URL=" + api.base}, "domains", "list"); err == nil ||
		!strings.Contains(stderr, "API key") {
		t.Errorf("without a key: err %v, stderr %q", err, stderr)
	}

	for _, args := range [][]string{{"domains"}, {"domains", "create", "--help"}} {
		out, stderr, _ := g.run(env, args...)
		if token := env[1][len("MAILGATE_API_KEY="):]; strings.Contains(out+stderr, token) {
			t.Errorf("mailgate %s prints the API key", strings.Join(args, " "))
		}
	}

	mustRun("domains", "delete", "shop.example")
	if list := mustRun("domains", "list"); strings.Contains(list, "shop.example") {
		t.Errorf("domains list after delete:\n%s", list)
	}
}

// rowsInState counts the rows of a `domains verify` table in state (its
// first column): counting the word anywhere would also count it inside a
// key's base64 (an RSA public key may well hold "OK").
func rowsInState(table, state string) int {
	n := 0
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == state {
			n++
		}
	}
	return n
}
