package bounce

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRules(t *testing.T) {
	got, err := ParseRules([]byte("# operator rules\n\n" +
		"  Mailbox Full => userunknown hard  \n" +
		"a => b => filtered soft site-filter\n" +
		"status 5.7.1 => blocked soft\n" +
		"Status  x.2.22 => mailboxfull soft site-quota\n" +
		"status 4.3.2 => notaccept soft\n" +
		"status X.3.2 => notaccept hard\n" +
		"status code 550 => rejected soft\n" +
		"status pending => onhold soft\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{ID: "operator:3", Pattern: "mailbox full", Reason: ReasonUserUnknown, Hard: true},
		{ID: "site-filter", Pattern: "a => b", Reason: ReasonFiltered, Hard: false},
		{ID: "operator:5", Status: "5.7.1", Reason: ReasonBlocked},
		{ID: "site-quota", Status: "X.2.22", Reason: ReasonMailboxFull},
		{ID: "operator:7", Status: "4.3.2", Reason: ReasonNotAccept},
		{ID: "operator:8", Status: "X.3.2", Reason: ReasonNotAccept, Hard: true},
		{ID: "operator:9", Pattern: "status code 550", Reason: ReasonRejected}, // more than one word: a phrase
		{ID: "operator:10", Pattern: "status pending", Reason: ReasonOnHold},   // no code: a phrase
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
		{"# c\nstatus 5.1 => userunknown hard", `line 2: bad status code "5.1"`},
		{"status 5.1.1.1 => userunknown hard", `line 1: bad status code "5.1.1.1"`},
		{"status 5.01.1 => userunknown hard", `line 1: bad status code "5.01.1"`},
		{"status 5.1.1000 => userunknown hard", `line 1: bad status code "5.1.1000"`},
		{"status 5.a.1 => userunknown hard", `line 1: bad status code "5.a.1"`},
		{"status x.1.a => filtered soft", `line 1: bad status code "x.1.a"`},
		{"status 2.1.1 => userunknown hard", `line 1: status code "2.1.1" is a success (class 2)`},
		{"status 3.1.1 => userunknown hard", `line 1: bad status code "3.1.1": the class must be 4, 5 or X`},
		{"status 5.1.1 => nosuchreason hard", `line 1: unknown reason "nosuchreason"`},
		{"status 5.1.1 => delivered soft", `line 1: unknown reason "delivered"`},
		{"status 5.1.1 => userunknown maybe", `line 1: want hard or soft, got "maybe"`},
		{"status 5.1.1 => userunknown soft", "line 1: status 5.1.1 => userunknown is hard, not soft"},
		{"status 5.7.1 => blocked hard", "line 1: status 5.7.1 => blocked is soft, not hard"},
		{"status 4.3.2 => notaccept hard", "line 1: status 4.3.2 => notaccept is soft, not hard"},
		{"status X.3.2 => notaccept soft", "line 1: status X.3.2 => notaccept is hard, not soft"},
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

// statusByLines reads the reason of a class 4 or 5 status code off rule
// lists the slow way, in the precedence ParseRules documents: each file in
// turn (the operator's first), its line for the code's class, then its X
// line, the first such line of the file.
func statusByLines(code string, files ...[]Rule) (Rule, bool) {
	for _, rules := range files {
		for _, want := range []string{code, "X" + code[1:]} {
			for _, r := range rules {
				if r.Status == want {
					return r, true
				}
			}
		}
	}
	return Rule{}, false
}

// TestStatusRulesPrecedence checks that the status table gives every code
// of classes 4 and 5, subject 0–9, detail 0–30, the meaning its lines say
// by the documented precedence: the built-in file alone, then with
// operator lines over it (a class line and an X line for the same code,
// two lines for one code, a code the built-in file leaves out).
func TestStatusRulesPrecedence(t *testing.T) {
	builtin, err := ParseRules(builtinRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	operator, err := ParseRules([]byte("status X.2.2 => suspend soft x-full\nstatus 4.2.2 => systemfull soft\n" +
		"status 5.7.1 => blocked soft\nstatus X.7.1 => policyviolation soft first\nstatus X.7.1 => spamdetected soft second\n" +
		"status 5.9.30 => rejected soft\nstatus 4.1.1 => userunknown hard\nquota => suspend soft\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range []struct {
		name    string
		files   [][]Rule
		p       *Parser
		phrases int
	}{
		{"built-in", [][]Rule{builtin}, New(Limits{}), 0},
		{"operator", [][]Rule{operator, builtin}, New(Limits{}, operator...), 1},
	} {
		if len(c.p.rules) != c.phrases {
			t.Errorf("%s: %d operator phrase rules, want %d", c.name, len(c.p.rules), c.phrases)
		}
		for _, class := range "45" {
			for subject := range 10 {
				for detail := range 31 {
					code := fmt.Sprintf("%c.%d.%d", class, subject, detail)
					got := c.p.tbl.status(code)
					want, ok := statusByLines(code, c.files...)
					if got.reason != want.Reason {
						t.Errorf("%s %s: reason %q, the lines say %q", c.name, code, got.reason, want.Reason)
					}
					_, builtinToo := statusByLines(code, builtin)
					isOperator := c.name == "operator" && ok && !slices.Contains(builtin, want)
					if wantOp := map[bool]string{true: want.ID}[isOperator]; got.operator != wantOp || got.overrides != (isOperator && builtinToo) {
						t.Errorf("%s %s: operator %q overrides %v, want %q %v", c.name, code, got.operator, got.overrides, wantOp, isOperator && builtinToo)
					}
					if ok {
						n++
					}
				}
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d codes have a meaning: the built-in status lines did not load", n)
	}
}

// TestOperatorStatusRuleOverrides checks that an operator status rule
// replaces a code's built-in meaning: the result carries its id, names the
// built-in rule it replaced, and keeps IsHard's flag; Explain shows it.
func TestOperatorStatusRuleOverrides(t *testing.T) {
	const diag = "550 5.7.1 see https://help.example.net/"
	builtin := New(Limits{}).Classify("", diag)
	if builtin.Reason != ReasonSecurityError || builtin.Rule != "status:5.7.1" || builtin.Overrides != "" {
		t.Fatalf("built-in: reason %s rule %s overrides %q", builtin.Reason, builtin.Rule, builtin.Overrides)
	}
	rules, err := ParseRules([]byte("status 5.7.1 => blocked soft site-571\nstatus X.2.2 => suspend soft\nstatus 5.7.99 => hostunknown hard\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Limits{}, rules...)
	for _, c := range []struct {
		status, diag, reason, rule, overrides string
		hard                                  bool
	}{
		{"", diag, ReasonBlocked, "site-571", "status:5.7.1", false},
		{"4.2.2", "", ReasonSuspend, "operator:2", "status:4.2.2", false},
		{"5.2.2", "", ReasonSuspend, "operator:2", "status:5.2.2", false},
		{"5.7.99", "", ReasonHostUnknown, "operator:3", "", true}, // no built-in meaning to override
		{"4.7.1", "", ReasonBlocked, "status:4.7.1", "", false},   // the built-in 4.7.1 line stands
	} {
		x := p.Classify(c.status, c.diag)
		if x.Reason != c.reason || x.Rule != c.rule || x.Overrides != c.overrides || x.Hard != c.hard {
			t.Errorf("Classify(%q, %q) = %s rule %s overrides %q hard %v, want %s rule %s overrides %q hard %v",
				c.status, c.diag, x.Reason, x.Rule, x.Overrides, x.Hard, c.reason, c.rule, c.overrides, c.hard)
		}
	}
	// A phrase of the diagnostic outweighs the status code, as for the
	// built-in meaning: the operator's 5.2.2 does not beat "mailbox full".
	if x := p.Classify("5.2.2", "552 5.2.2 Mailbox full"); x.Reason != ReasonMailboxFull || x.Overrides != "" {
		t.Errorf("phrase and operator status: %s rule %s overrides %q", x.Reason, x.Rule, x.Overrides)
	}
	// An operator phrase rule over an operator status rule's decision
	// still names the built-in rule that was replaced.
	both, err := ParseRules([]byte("status 5.7.1 => blocked soft site-571\nsee https => spamdetected soft site-see\n"))
	if err != nil {
		t.Fatal(err)
	}
	if x := New(Limits{}, both...).Classify("", diag); x.Rule != "site-see" || x.Overrides != "status:5.7.1" {
		t.Errorf("phrase over operator status: rule %s overrides %q, want site-see overrides status:5.7.1", x.Rule, x.Overrides)
	}
	// A later built-in step that decides instead (a local mailer's
	// failure, an SES subtype) leaves no stale Overrides behind.
	local := p.Classify("5.9.9", "")
	local.Overrides = "status:5.9.9"
	markMailerError(&local, p.tbl)
	ses := local
	ses.Overrides = "status:5.9.9"
	sesSubType(&ses, "MailboxFull")
	if local.Rule != "local-mailer" || local.Overrides != "" || ses.Rule != "ses:MailboxFull" || ses.Overrides != "" {
		t.Errorf("local mailer: rule %s overrides %q; SES: rule %s overrides %q", local.Rule, local.Overrides, ses.Rule, ses.Overrides)
	}
	r := &Report{Kind: KindBounce, Results: []Result{p.Classify("", diag)}}
	ex := r.Explain()
	for _, want := range []string{"rule: site-571", "overrides built-in rule: status:5.7.1", "reason: blocked", "hard: false (the reason leaves the address valid)"} {
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
// every rule it returns is usable: a known reason, an id, and either a
// non-empty lower-case pattern or a status code as ParseRules documents it
// (class 4, 5 or X, the hard flag IsHard's), which a Parser then gives the
// meaning of the line the precedence picks.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte("# c\nuser unknown => userunknown hard\nx => b => filtered soft id\n"))
	f.Add([]byte("=>\n => \n=> userunknown hard"))
	f.Add([]byte("a=>mailboxfull soft\r\nb => blocked soft z\n"))
	f.Add([]byte("domain ... does not exist => hostunknown hard\na ... ... b => filtered soft\n"))
	f.Add([]byte("status 5.7.1 => blocked soft\nstatus X.2.2 => suspend soft id\nstatus 4.2.2 => systemfull soft\nstatus x.7.1 => policyviolation soft\n"))
	f.Add([]byte("status 5.1.1 => userunknown hard\nstatus 5.1.1 => filtered soft\nstatus 4.3.2 => notaccept soft\nstatus X.3.2 => notaccept hard\n"))
	f.Add([]byte("status 2.1.1 => userunknown hard\nstatus 5.01.1 => filtered soft\nstatus => blocked soft\nstatus code 5.1.1 => rejected soft\n"))
	f.Add([]byte("STATUS 5.999.999 => mailboxfull soft\n\tstatus\tX.0.0 => onhold soft\n"))
	builtin, err := ParseRules(builtinRuleFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRules(data)
		if err != nil {
			return
		}
		var p *Parser // made once, for the status rules
		for _, r := range rules {
			if r.ID == "" || !isFailureReason(r.Reason) {
				t.Errorf("bad rule %+v from %q", r, data)
			}
			if r.Status != "" {
				if code, err := parseStatusCode(strings.ToLower(r.Status)); err != nil || code != r.Status || r.Pattern != "" {
					t.Errorf("bad status rule %+v from %q (%v)", r, data, err)
					continue
				}
				if r.Hard != IsHard(r.Reason, statusForClass(r.Status)) {
					t.Errorf("status rule %+v: the hard flag is not IsHard's", r)
				}
				// With no diagnostic, the code's meaning decides: the
				// reason and id of the line the precedence picks.
				if p == nil {
					p = New(Limits{}, rules...)
				}
				for _, class := range "45" {
					code := string(class) + r.Status[1:]
					want, _ := statusByLines(code, rules, builtin)
					x := p.Classify(code, "")
					wantRule := want.ID
					if !slices.Contains(rules, want) {
						wantRule = "status:" + code
					}
					if want.Status != "" && (x.Reason != want.Reason || x.Rule != wantRule) {
						t.Errorf("Classify(%s) = %s by %s, the lines say %s by %s (%q)", code, x.Reason, x.Rule, want.Reason, wantRule, data)
					}
				}
				continue
			}
			if r.Pattern == "" || r.Pattern != strings.ToLower(r.Pattern) {
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
	tbl, err := newRuleTable(builtinRuleFile)
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
	// Status rules: the parser checks their hard flags; a result carries
	// "status:" and its code, so a line names no id of its own, and one
	// code has one line.
	rules, err := parseRuleFile(builtinRuleFile, builtinID)
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for _, r := range rules {
		if r.Status == "" {
			continue
		}
		n++
		if r.ID != "status:"+r.Status {
			t.Errorf("status rule %s names id %s", r.Status, r.ID)
		}
		if ids[r.ID] {
			t.Errorf("rule %s listed twice", r.ID)
		}
		ids[r.ID] = true
	}
	if n < 50 {
		t.Errorf("built-in file has %d status rules, want the RFC 3463 table", n)
	}
	if _, err := newRuleTable([]byte("x => nosuchreason soft\n")); err == nil || !strings.Contains(err.Error(), "built-in bounce rules line 1") {
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
