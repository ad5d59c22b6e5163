package bounce

import (
	_ "embed" // the built-in rule file
	"fmt"
	"slices"
	"strings"
	"sync"
)

// builtinRuleFile is the built-in phrase table: the lower-case phrases by
// which MTAs and providers state each reason, in the operator rule format
// (see ParseRules and the file's header).
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

// phraseTable holds the built-in rules per reason, in file order.
type phraseTable struct {
	byReason [][]Rule     // indexed by reasonIndex
	gapped   [][]bool     // whether the rule of byReason has " ... " gaps
	keys     [][][]uint16 // the phraseKeys of the rule of byReason
}

// builtinTable parses the embedded rule file once: the table is immutable
// and every Parser shares it (Parse makes a Parser per call).
var builtinTable = sync.OnceValues(func() (*phraseTable, error) {
	return newPhraseTable(builtinRuleFile)
})

// newPhraseTable parses a built-in rule file: the operator format, each
// rule's id defaulting to REASON:PATTERN.
func newPhraseTable(data []byte) (*phraseTable, error) {
	rules, err := parseRuleFile(data, func(r Rule, _ int) string { return r.Reason + ":" + r.Pattern })
	if err != nil {
		return nil, fmt.Errorf("built-in %w", err)
	}
	return tableOf(rules), nil
}

// tableOf groups rules by reason, keeping their order.
func tableOf(rules []Rule) *phraseTable {
	n := len(failureReasons)
	t := &phraseTable{byReason: make([][]Rule, n), gapped: make([][]bool, n), keys: make([][][]uint16, n)}
	for _, r := range rules {
		i := reasonIndex(r.Reason)
		t.byReason[i] = append(t.byReason[i], r)
		t.gapped[i] = append(t.gapped[i], strings.Contains(r.Pattern, gapSep))
		t.keys[i] = append(t.keys[i], phraseKeys(r.Pattern))
	}
	return t
}

// without returns a copy of the table lacking the rules with the given
// ids (leave-one-out measures in the tests).
func (t *phraseTable) without(ids map[string]bool) *phraseTable {
	var rules []Rule
	for _, rs := range t.byReason {
		for _, r := range rs {
			if !ids[r.ID] {
				rules = append(rules, r)
			}
		}
	}
	return tableOf(rules)
}

// first returns the first rule of reason whose pattern the lower-case text
// contains. set, when not nil, is the bigramSet of text: the rules it rules
// out are not searched for.
func (t *phraseTable) first(reason, text string, set *bigramSet) (Rule, bool) {
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
func (t *phraseTable) has(reason, text string) bool {
	_, ok := t.first(reason, text, nil)
	return ok
}

// hasAny reports whether lower-case text states any of the reasons.
func (t *phraseTable) hasAny(text string, reasons ...string) bool {
	for _, r := range reasons {
		if t.has(r, text) {
			return true
		}
	}
	return false
}

// hasOther reports whether text states reason by a rule whose pattern is
// not one of except.
func (t *phraseTable) hasOther(text, reason string, except ...string) bool {
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

// textMatcher answers phraseTable.has for one text, testing each reason's
// phrases at most once, and only those the text's bigramSet lets through.
type textMatcher struct {
	tbl         *phraseTable
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
