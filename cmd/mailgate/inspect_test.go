package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInspectExplainOperatorRule runs `mailgate inspect --explain` on a
// mailbox-full DSN, first with the built-in rules, then with an operator
// rule file overriding them, and checks the decision path names the rule
// that fired each time.
func TestInspectExplainOperatorRule(t *testing.T) {
	eml := filepath.Join("..", "..", "bounce", "testdata", "reports", "exim-inline.eml")
	out := runCLI(t, "inspect", "--explain", eml)
	for _, want := range []string{"kind: bounce", "rule: status:5.2.2", "reason: mailboxfull", "hard: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("built-in explain lacks %q:\n%s", want, out)
		}
	}
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("# site rules\nquota exceeded => suspend hard\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = runCLI(t, "inspect", "--explain", "--rules", rules, eml)
	for _, want := range []string{"rule: operator:2", "reason: suspend", "hard: true (set by the rule)"} {
		if !strings.Contains(out, want) {
			t.Errorf("operator explain lacks %q:\n%s", want, out)
		}
	}
	out = runCLI(t, "inspect", "--rules", rules, eml)
	if !strings.Contains(out, `"rule": "operator:2"`) {
		t.Errorf("JSON lacks the operator rule:\n%s", out)
	}
	if err := os.WriteFile(rules, []byte("quota => nosuchreason hard\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := execCLI(t, "inspect", "--rules", rules, eml); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad rule file: err %v, want one naming line 1", err)
	}
}
