package bounce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRules(t *testing.T) {
	got, err := ParseRules([]byte("# operator rules\n\n" +
		"  Mailbox Full => userunknown hard  \n" +
		"a => b => filtered soft site-filter\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{ID: "operator:3", Pattern: "mailbox full", Reason: ReasonUserUnknown, Hard: true},
		{ID: "site-filter", Pattern: "a => b", Reason: ReasonFiltered, Hard: false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	for _, bad := range []struct{ in, msg string }{
		{"no arrow here", "line 1: want PATTERN"},
		{"# c\n => userunknown hard", "line 2: empty pattern"},
		{"x => nosuchreason hard", `line 1: unknown reason "nosuchreason"`},
		{"x => delivered soft", `line 1: unknown reason "delivered"`},
		{"x => userunknown maybe", `line 1: want hard or soft, got "maybe"`},
		{"x => userunknown", "line 1: want REASON hard|soft [ID] after =>"},
		{"x => userunknown hard id extra", "line 1: want REASON hard|soft [ID] after =>"},
	} {
		if _, err := ParseRules([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("ParseRules(%q) = %v, want error with %q", bad.in, err, bad.msg)
		}
	}
}

// TestOperatorRuleOverrides checks that an operator rule matching the
// diagnostic replaces the built-in decision, and that Explain shows it.
func TestOperatorRuleOverrides(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "reports", "exim-inline.eml"))
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := New(Limits{}).Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if x := builtin.Results[0]; x.Reason != ReasonMailboxFull || x.Hard || x.Rule != "status:5.2.2" {
		t.Fatalf("built-in: reason %s hard %v rule %s", x.Reason, x.Hard, x.Rule)
	}
	rules, err := ParseRules([]byte("quota exceeded => suspend hard dead-quota\nnever seen => filtered soft\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Limits{}, rules...).Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	x := r.Results[0]
	if x.Reason != ReasonSuspend || !x.Hard || x.Rule != "dead-quota" {
		t.Errorf("operator: reason %s hard %v rule %s", x.Reason, x.Hard, x.Rule)
	}
	ex := r.Explain()
	for _, want := range []string{"rule: dead-quota", "reason: suspend", "hard: true (set by the rule)", `diagnostic: "552 5.2.2 Mailbox full: quota exceeded"`} {
		if !strings.Contains(ex, want) {
			t.Errorf("Explain lacks %q:\n%s", want, ex)
		}
	}
}

// TestEveryResultHasRule checks that every result the parser makes for the
// labelled corpus names the rule that decided it.
func TestEveryResultHasRule(t *testing.T) {
	order, _ := readLabels(t)
	for _, name := range order {
		raw, err := os.ReadFile(filepath.Join("testdata", "corpus", name))
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range r.Results {
			if x.Rule == "" {
				t.Errorf("%s: %s result for %s has no rule", name, r.Kind, x.Recipient)
			}
		}
	}
}

// FuzzParseRules checks that the rule file parser never panics and that
// every rule it returns is usable: a known reason, a non-empty lower-case
// pattern, an id.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte("# c\nuser unknown => userunknown hard\nx => b => filtered soft id\n"))
	f.Add([]byte("=>\n => \n=> userunknown hard"))
	f.Add([]byte("a=>mailboxfull soft\r\nb => blocked soft z\n"))
	f.Add([]byte("domain ... does not exist => hostunknown hard\na ... ... b => filtered soft\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRules(data)
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.Pattern == "" || r.Pattern != strings.ToLower(r.Pattern) || r.ID == "" || !isFailureReason(r.Reason) {
				t.Errorf("bad rule %+v from %q", r, data)
			}
			for _, frag := range strings.Split(r.Pattern, gapSep) {
				if strings.TrimSpace(frag) == "" {
					t.Errorf("rule %+v from %q has an empty fragment", r, data)
				}
			}
			if !matchPattern(r.Pattern, r.Pattern) {
				t.Errorf("pattern %q does not match its own text", r.Pattern)
			}
		}
	})
}

// TestBuiltinRules checks the embedded rule file: it parses, every rule
// names a failure reason with the hard flag IsHard gives it for a
// permanent failure, and no pattern is listed twice for one reason (ids
// are unique).
func TestBuiltinRules(t *testing.T) {
	tbl, err := newPhraseTable(builtinRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	n := 0
	for _, rs := range tbl.byReason {
		for _, r := range rs {
			n++
			if r.Hard != IsHard(r.Reason, "5.0.0") {
				t.Errorf("rule %s: hard %v, but IsHard(%s, 5.0.0) is %v", r.ID, r.Hard, r.Reason, !r.Hard)
			}
			if ids[r.ID] {
				t.Errorf("rule %s listed twice", r.ID)
			}
			ids[r.ID] = true
		}
	}
	if n < 100 {
		t.Errorf("built-in table has %d rules, want the embedded file's", n)
	}
	if _, err := newPhraseTable([]byte("x => nosuchreason soft\n")); err == nil || !strings.Contains(err.Error(), "built-in bounce rules line 1") {
		t.Errorf("bad built-in file: err %v", err)
	}
}

// TestMatchPattern checks the " ... " gaps of rule patterns.
func TestMatchPattern(t *testing.T) {
	long := strings.Repeat("x", maxGap+1)
	for _, c := range []struct {
		text, pattern string
		want          bool
	}{
		{"550 no such user here", "no such user", true},
		{"550 no such user here", "no such ... here", true},
		{"domain example.org does not exist", "domain ... does not exist", true},
		{"domain ... does not exist", "domain ... does not exist", true},
		{"does not exist: domain example.org", "domain ... does not exist", false},
		{"domain " + long + " does not exist", "domain ... does not exist", false},
		{"domain " + long + " domain x does not exist", "domain ... does not exist", true}, // a later, nearer start
		{"host a.b: mailbox x unknown", "host ... mailbox ... unknown", true},
		{"host a.b: unknown mailbox", "host ... mailbox ... unknown", false},
		{"192.0.2.1 is not listed in any blocklist", "listed", false},
		{"192.0.2.1 is not listed here but is listed at zen", "listed", true},
		{"192.0.2.1 is listed", "listed", true},
		{"this address is not a valid user", "not a valid user", true},
		{"the mailbox is not full", "mailbox ... full", false},
		{"account x is not disabled but mailbox x is full", "mailbox ... full", true},
	} {
		if got := matchPattern(c.text, c.pattern); got != c.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", c.text, c.pattern, got, c.want)
		}
	}
	for _, bad := range []string{"... x => filtered soft", "x ... => filtered soft", "a ...  ... b => filtered soft"} {
		if _, err := ParseRules([]byte(bad)); err == nil || !strings.Contains(err.Error(), "empty fragment") {
			t.Errorf("ParseRules(%q) = %v, want an empty fragment error", bad, err)
		}
	}
}
