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

// TestInspectExplainOverridesBuiltinPhrase checks that an operator rule
// overrides a phrase rule of the built-in table (not only a status code),
// and that --explain names both the operator rule and the built-in one it
// replaced.
func TestInspectExplainOverridesBuiltinPhrase(t *testing.T) {
	eml := writeDSN(t, "5.0.0", "550 Requested action not taken: mailbox unavailable")
	out := runCLI(t, "inspect", "--explain", eml)
	for _, want := range []string{"rule: diagnostic:userunknown:mailbox unavailable", "reason: userunknown", "hard: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("built-in explain lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "overrides") {
		t.Errorf("built-in explain names an override:\n%s", out)
	}
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("mailbox unavailable => filtered soft site-unavailable\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = runCLI(t, "inspect", "--explain", "--rules", rules, eml)
	for _, want := range []string{"rule: site-unavailable", "overrides built-in rule: diagnostic:userunknown:mailbox unavailable",
		"reason: filtered", "hard: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("operator explain lacks %q:\n%s", want, out)
		}
	}
}

// TestInspectExplainOverridesBuiltinStatus checks that an operator status
// rule replaces a status code's built-in meaning, and that --explain and
// the JSON name the operator rule and the built-in one it replaced.
func TestInspectExplainOverridesBuiltinStatus(t *testing.T) {
	eml := writeDSN(t, "5.7.1", "550 5.7.1 see https://help.example.net/")
	out := runCLI(t, "inspect", "--explain", eml)
	for _, want := range []string{"rule: status:5.7.1", "reason: securityerror", "hard: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("built-in explain lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "overrides") {
		t.Errorf("built-in explain names an override:\n%s", out)
	}
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("# site rules\nstatus 5.7.1 => blocked soft site-571\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = runCLI(t, "inspect", "--explain", "--rules", rules, eml)
	for _, want := range []string{"rule: site-571", "overrides built-in rule: status:5.7.1", "reason: blocked", "hard: false"} {
		if !strings.Contains(out, want) {
			t.Errorf("operator explain lacks %q:\n%s", want, out)
		}
	}
	out = runCLI(t, "inspect", "--rules", rules, eml)
	for _, want := range []string{`"rule": "site-571"`, `"overrides": "status:5.7.1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
	if err := os.WriteFile(rules, []byte("# site rules\n\nstatus 2.0.0 => blocked soft\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := execCLI(t, "inspect", "--rules", rules, eml); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("bad status rule: err %v, want one naming line 3", err)
	}
}

// writeDSN writes a one-recipient failure DSN with this status and
// diagnostic into a temporary file and returns its path.
func writeDSN(t *testing.T, status, diagnostic string) string {
	t.Helper()
	eml := filepath.Join(t.TempDir(), "dsn.eml")
	dsn := "From: MAILER-DAEMON@mx.example.net\nTo: bounces@example.com\nSubject: Delivery Status Notification\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\nReport.\n\n--b\nContent-Type: message/delivery-status\n\n" +
		"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; r@example.org\nAction: failed\n" +
		"Status: " + status + "\nDiagnostic-Code: smtp; " + diagnostic + "\n\n--b--\n"
	if err := os.WriteFile(eml, []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	return eml
}
