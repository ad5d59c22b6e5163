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
	byReason [][]Rule // indexed by reasonIndex
	gapped   [][]bool // whether the rule of byReason has " ... " gaps
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
	t := &phraseTable{byReason: make([][]Rule, len(failureReasons)), gapped: make([][]bool, len(failureReasons))}
	for _, r := range rules {
		i := reasonIndex(r.Reason)
		t.byReason[i] = append(t.byReason[i], r)
		t.gapped[i] = append(t.gapped[i], strings.Contains(r.Pattern, gapSep))
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
// contains.
func (t *phraseTable) first(reason, text string) (Rule, bool) {
	if text == "" {
		return Rule{}, false
	}
	i := reasonIndex(reason)
	if i < 0 {
		return Rule{}, false
	}
	for j, r := range t.byReason[i] {
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
	_, ok := t.first(reason, text)
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

// ruleID returns the id of the first rule of reason that text states, or "".
func (t *phraseTable) ruleID(reason, text string) string {
	r, _ := t.first(reason, text)
	return r.ID
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
// phrases at most once.
type textMatcher struct {
	tbl         *phraseTable
	text        string
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
		if t.tbl.has(reason, t.text) {
			t.hits |= mask
		}
	}
	return t.hits&mask != 0
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
