package bounce

import (
	_ "embed" // the built-in rule file
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// builtinRuleFile is the built-in rule table: the lower-case phrases by
// which MTAs and providers state each reason and the meanings of the RFC
// 3463 status codes, in the operator rule format (see ParseRules and the
// file's header).
//
//go:embed builtin.rules
var builtinRuleFile []byte

// failureReasons are the reasons a rule may name, in a fixed order that
// numbers them for textMatcher.
var failureReasons = []string{
	ReasonUserUnknown, ReasonMailboxFull, ReasonHostUnknown, ReasonFiltered, ReasonRejected,
	ReasonBlocked, ReasonSpamDetected, ReasonVirusDetected, ReasonExpired, ReasonSuspend,
	ReasonTooManyConn, ReasonSpeeding, ReasonPolicyViolation, ReasonSecurityError,
	ReasonAuthFailure, ReasonRequirePTR, ReasonBadReputation, ReasonNoRelaying, ReasonNotAccept,
	ReasonNotCompliantRFC, ReasonContentError, ReasonSyntaxError, ReasonSystemError,
	ReasonSystemFull, ReasonNetworkError, ReasonMailerError, ReasonMesgTooBig,
	ReasonExceedLimit, ReasonHasMoved, ReasonOnHold, ReasonUndefined,
}

// reasonNumbers numbers failureReasons (read only).
var reasonNumbers = func() map[string]int {
	m := make(map[string]int, len(failureReasons))
	for i, r := range failureReasons {
		m[r] = i
	}
	return m
}()

// reasonIndex returns the number of a failure reason, or -1.
func reasonIndex(reason string) int {
	if i, ok := reasonNumbers[reason]; ok {
		return i
	}
	return -1
}

// ruleTable holds the built-in phrase rules per reason, in file order,
// and the status codes' meanings, built-in and operator ones merged. It
// is immutable once made.
type ruleTable struct {
	byReason [][]Rule     // indexed by reasonIndex
	gapped   [][]bool     // whether the rule of byReason has " ... " gaps
	keys     [][][]uint16 // the phraseKeys of the rule of byReason
	// transient and permanent give the meaning of a 4.x.x code and of any
	// other, by "subject.detail": one lookup, the precedence of the
	// status rules (see ParseRules) resolved when the table is made.
	transient, permanent map[string]statusMeaning
}

// statusMeaning is what a status code means: its reason and the status
// rule that says so.
type statusMeaning struct {
	reason string
	// operator is the id of the operator rule that gave the meaning; ""
	// for a built-in rule.
	operator string
	// overrides, for an operator rule, tells that a built-in rule gave
	// the code a meaning too.
	overrides bool
}

// rule returns the Result.Rule of a result the meaning decided for this
// status: the operator rule's id, or "status:CODE" for a built-in rule.
func (m statusMeaning) rule(status string) string {
	if m.operator != "" {
		return m.operator
	}
	return "status:" + status
}

// builtinTable parses the embedded rule file once: the table is immutable
// and every Parser shares it (Parse makes a Parser per call).
var builtinTable = sync.OnceValues(func() (*ruleTable, error) {
	return newRuleTable(builtinRuleFile)
})

// newRuleTable parses a built-in rule file: the operator format, a phrase
// rule's id defaulting to REASON:PATTERN, a status rule's to
// status:CODE.
func newRuleTable(data []byte) (*ruleTable, error) {
	rules, err := parseRuleFile(data, builtinID)
	if err != nil {
		return nil, fmt.Errorf("built-in %w", err)
	}
	t := tableOf(rules)
	t.transient, t.permanent = map[string]statusMeaning{}, map[string]statusMeaning{}
	t.addStatusRules(rules, false)
	return t, nil
}

// builtinID names a built-in rule whose line names none: REASON:PATTERN
// for a phrase rule, status:CODE for a status rule.
func builtinID(r Rule, _ int) string {
	if r.Status != "" {
		return "status:" + r.Status
	}
	return r.Reason + ":" + r.Pattern
}

// tableOf groups the phrase rules by reason, keeping their order.
func tableOf(rules []Rule) *ruleTable {
	n := len(failureReasons)
	t := &ruleTable{byReason: make([][]Rule, n), gapped: make([][]bool, n), keys: make([][][]uint16, n)}
	for _, r := range rules {
		if r.Status != "" {
			continue
		}
		i := reasonIndex(r.Reason)
		t.byReason[i] = append(t.byReason[i], r)
		t.gapped[i] = append(t.gapped[i], strings.Contains(r.Pattern, gapSep))
		t.keys[i] = append(t.keys[i], phraseKeys(r.Pattern))
	}
	return t
}

// withOperatorStatus returns a copy of the table whose status meanings
// are overridden by the operator's status rules (the phrase rules are
// shared), or t itself when rules hold none.
func (t *ruleTable) withOperatorStatus(rules []Rule) *ruleTable {
	if !slices.ContainsFunc(rules, isStatusRule) {
		return t
	}
	c := *t
	c.transient, c.permanent = maps.Clone(t.transient), maps.Clone(t.permanent)
	c.addStatusRules(rules, true)
	return &c
}

// addStatusRules enters the status rules of one file over the meanings
// already in the table: its X lines first, then its class lines, so that
// a class line wins over an X line, each pass in reverse so that the
// first line for a code wins. A rule whose Status does not parse is
// skipped.
func (t *ruleTable) addStatusRules(rules []Rule, operator bool) {
	builtin := func(m map[string]statusMeaning, key string) bool {
		old, ok := m[key]
		return ok && (old.operator == "" || old.overrides)
	}
	set := func(m map[string]statusMeaning, key string, r Rule) {
		meaning := statusMeaning{reason: r.Reason}
		if operator {
			meaning.operator, meaning.overrides = r.ID, builtin(m, key)
		}
		m[key] = meaning
	}
	for _, pass := range []string{"X", "class"} {
		for i := len(rules) - 1; i >= 0; i-- {
			r := rules[i]
			code, err := parseStatusCode(strings.ToLower(r.Status))
			if r.Status == "" || err != nil || (code[0] == 'X') != (pass == "X") {
				continue
			}
			key := code[2:]
			if code[0] != '4' {
				set(t.permanent, key, r)
			}
			if code[0] != '5' {
				set(t.transient, key, r)
			}
		}
	}
}

// status returns the meaning of a status code (class 4 by the transient
// table, any other by the permanent one); the zero meaning, reason "",
// when the code says too little (X.0.0, unknown subjects) or there is no
// code.
func (t *ruleTable) status(status string) statusMeaning {
	if len(status) < 5 {
		return statusMeaning{}
	}
	if status[0] == '4' {
		return t.transient[status[2:]]
	}
	return t.permanent[status[2:]]
}

// without returns a copy of the table lacking the phrase rules with the
// given ids, the status meanings shared (leave-one-out measures in the
// tests).
func (t *ruleTable) without(ids map[string]bool) *ruleTable {
	var rules []Rule
	for _, rs := range t.byReason {
		for _, r := range rs {
			if !ids[r.ID] {
				rules = append(rules, r)
			}
		}
	}
	c := tableOf(rules)
	c.transient, c.permanent = t.transient, t.permanent
	return c
}

// first returns the first rule of reason whose pattern the lower-case text
// contains. set, when not nil, is the bigramSet of text: the rules it rules
// out are not searched for.
func (t *ruleTable) first(reason, text string, set *bigramSet) (Rule, bool) {
	if text == "" {
		return Rule{}, false
	}
	i := reasonIndex(reason)
	if i < 0 {
		return Rule{}, false
	}
	for j, r := range t.byReason[i] {
		if set != nil && !set.mayContain(t.keys[i][j]) {
			continue
		}
		// A plain pattern is looked for first as a substring, the common
		// miss being the cheapest test; matchPattern then rules out a
		// negated occurrence.
		if (t.gapped[i][j] || strings.Contains(text, r.Pattern)) && matchPattern(text, r.Pattern) {
			return r, true
		}
	}
	return Rule{}, false
}

// has reports whether lower-case text states the reason.
func (t *ruleTable) has(reason, text string) bool {
	_, ok := t.first(reason, text, nil)
	return ok
}

// hasAny reports whether lower-case text states any of the reasons.
func (t *ruleTable) hasAny(text string, reasons ...string) bool {
	for _, r := range reasons {
		if t.has(r, text) {
			return true
		}
	}
	return false
}

// hasOther reports whether text states reason by a rule whose pattern is
// not one of except.
func (t *ruleTable) hasOther(text, reason string, except ...string) bool {
	i := reasonIndex(reason)
	if i < 0 {
		return false
	}
	for _, r := range t.byReason[i] {
		if matchPattern(text, r.Pattern) && !slices.Contains(except, r.Pattern) {
			return true
		}
	}
	return false
}

// textMatcher answers ruleTable.has for one text, testing each reason's
// phrases at most once, and only those the text's bigramSet lets through.
type textMatcher struct {
	tbl         *ruleTable
	text        string
	set         bigramSet // of text, made at the first test (setMade)
	setMade     bool
	known, hits uint64
}

// has reports whether the text states reason.
func (t *textMatcher) has(reason string) bool {
	i := reasonIndex(reason)
	if i < 0 {
		return false
	}
	mask := uint64(1) << uint(i)
	if t.known&mask == 0 {
		t.known |= mask
		if _, ok := t.rule(reason); ok {
			t.hits |= mask
		}
	}
	return t.hits&mask != 0
}

// ruleID returns the id of the first rule of reason that the text states,
// or "".
func (t *textMatcher) ruleID(reason string) string {
	r, _ := t.rule(reason)
	return r.ID
}

// rule returns the first rule of reason that the text states.
func (t *textMatcher) rule(reason string) (Rule, bool) {
	if !t.setMade {
		t.set.add(t.text)
		t.setMade = true
	}
	return t.tbl.first(reason, t.text, &t.set)
}

// first returns the first reason of order the text states, or "".
func (t *textMatcher) first(order []string) string {
	for _, r := range order {
		if t.has(r) {
			return r
		}
	}
	return ""
}

// any reports whether the text states any of the reasons.
func (t *textMatcher) any(reasons ...string) bool {
	for _, r := range reasons {
		if t.has(r) {
			return true
		}
	}
	return false
}
