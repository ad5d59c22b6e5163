package mailgate

import (
	"encoding/json"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// allowedDeps is the dependency direction of docs/architecture.md: for
// each package of ours, the packages of ours it may import (tests
// excluded). Leaves import nothing of ours but internal/redact (which
// keeps passwords out of the errors that name a URL); nothing imports api,
// worker, inbound or cmd.
var allowedDeps = map[string][]string{
	"api":       {"store", "queue", "ratelimit", "apikey", "keyring", "dkimkey", "dnscheck", "webhook", "feedback", "migrations", ".", "internal/redact"},
	"worker":    {"store", "queue", "mta", "ratelimit", "webhook", "dkimkey", "dnscheck", "migrations", "internal/redact"},
	"inbound":   {"store", "queue", "bounce", "feedback", "webhook", "verp", "mailbox", "migrations", "internal/redact"},
	"store":     {"migrations"},
	"queue":     {"internal/redact"},
	"ratelimit": {},
	"mta":       {"internal/redact"},
	"bounce":    {},
	"webhook":   {},
	"apikey":    {},
	"keyring":   {},
	"verp":      {},
	"dkimkey":   {},
	"dnscheck":  {},
	"mailbox":   {"internal/redact"},
	"config":    {},
	"feedback":  {},
	"console":   {"store", "apikey", "ratelimit", "migrations", "dnscheck"},
}

const module = "github.com/mailgate/mailgate"

func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		top := strings.SplitN(name, "/", 2)[0]
		allowed, ruled := allowedDeps[top]
		if !ruled || strings.Contains(name, "/") && top != "api" {
			continue // cmd, internal test helpers and sub-packages are not ruled
		}
		if bad := forbidden(p.Deps, name, allowed); len(bad) > 0 {
			t.Errorf("%s imports %v; allowed: %v", name, bad, allowed)
		}
	}
}

// forbidden lists the packages of ours among deps that are not allowed.
func forbidden(deps []string, self string, allowed []string) []string {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	var bad []string
	for _, d := range deps {
		if !strings.HasPrefix(d, module) {
			continue
		}
		name := strings.TrimPrefix(strings.TrimPrefix(d, module), "/")
		if name == "" {
			name = "."
		}
		top := strings.SplitN(name, "/", 2)[0]
		if top != self && !ok[top] && !ok[name] {
			bad = append(bad, name)
		}
	}
	sort.Strings(bad)
	return bad
}
