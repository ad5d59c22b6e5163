package bounce

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Rule is an operator rule: a diagnostic that contains Pattern (compared
// in lower case) has reason Reason and is hard or soft as Hard says,
// whatever the built-in rules would decide. Operator rules are tried in
// order before the built-in ones; the first that matches wins.
type Rule struct {
	// ID names the rule in Result.Rule: the id given in the file, else
	// "operator:LINE".
	ID string
	// Pattern is the lower-case text the diagnostic must contain; " ... "
	// separates fragments that must occur in this order, each within
	// maxGap bytes after the previous one (see ParseRules).
	Pattern string
	// Reason is one of the failure Reason constants.
	Reason string
	// Hard is true for "hard" (the address is bad), false for "soft".
	Hard bool
}

// ParseRules reads an operator rule file (MAILGATE_BOUNCE_RULES). Each
// non-blank line that does not start with # is
//
//	PATTERN => REASON hard|soft [ID]
//
// PATTERN is matched case-insensitively as a substring of the diagnostic
// (surrounding spaces trimmed, "=>" may occur inside it: the last one
// splits). " ... " inside it stands for a gap of at most 60 bytes, so
// that "domain ... does not exist" matches "domain example.org does not
// exist" (and still the literal text); an occurrence right after "not "
// does not count ("not listed" is no listing); REASON is a failure reason
// (userunknown, mailboxfull, …);
// ID, optional, names the rule in results (default "operator:LINE"). The
// error names the first bad line.
func ParseRules(data []byte) ([]Rule, error) {
	return parseRuleFile(data, func(_ Rule, n int) string { return fmt.Sprintf("operator:%d", n) })
}

// parseRuleFile reads a rule file whose rules without an id are named by
// defaultID(rule, line number).
func parseRuleFile(data []byte, defaultID func(r Rule, line int) string) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseRule(line)
		if err != nil {
			return nil, fmt.Errorf("bounce rules line %d: %w", n, err)
		}
		if r.ID == "" {
			r.ID = defaultID(r, n)
		}
		rules = append(rules, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bounce rules: %w", err)
	}
	return rules, nil
}

// parseRule parses one rule line; ID stays empty when the line names none.
func parseRule(line string) (Rule, error) {
	i := strings.LastIndex(line, "=>")
	if i < 0 {
		return Rule{}, fmt.Errorf("want PATTERN => REASON hard|soft [ID]")
	}
	r := Rule{Pattern: strings.ToLower(strings.TrimSpace(line[:i]))}
	if r.Pattern == "" {
		return Rule{}, fmt.Errorf("empty pattern")
	}
	if strings.Contains(" "+r.Pattern+" ", " ...  ... ") || strings.HasPrefix(r.Pattern, "... ") || strings.HasSuffix(r.Pattern, " ...") {
		return Rule{}, fmt.Errorf("empty fragment around \" ... \"")
	}
	f := strings.Fields(line[i+2:])
	if len(f) < 2 || len(f) > 3 {
		return Rule{}, fmt.Errorf("want REASON hard|soft [ID] after =>")
	}
	if !isFailureReason(f[0]) {
		return Rule{}, fmt.Errorf("unknown reason %q", f[0])
	}
	r.Reason = f[0]
	switch f[1] {
	case "hard":
		r.Hard = true
	case "soft":
	default:
		return Rule{}, fmt.Errorf("want hard or soft, got %q", f[1])
	}
	if len(f) == 3 {
		r.ID = f[2]
	}
	return r, nil
}

// isFailureReason reports whether reason names why a delivery failed.
func isFailureReason(reason string) bool {
	return reasonIndex(reason) >= 0
}

// applyRules lets the first operator rule whose pattern the diagnostic
// contains decide the reason and hard flag of a failed or delayed result.
func applyRules(rules []Rule, x *Result) {
	switch x.Reason {
	case ReasonDelivered, ReasonFeedback, ReasonVacation:
		return
	}
	diag := strings.ToLower(x.Diagnostic)
	for _, r := range rules {
		if matchPattern(diag, r.Pattern) {
			x.Overrides = x.Rule
			x.Reason, x.Hard, x.Rule = r.Reason, r.Hard, r.ID
			return
		}
	}
}

// maxGap is the most bytes a " ... " of a pattern stands for: about a
// clause, so that fragments match within one statement of a diagnostic.
const maxGap = 60

// gapSep separates the fragments of a pattern.
const gapSep = " ... "

// matchPattern reports whether lower-case text contains pattern: its
// fragments in order, each starting at most maxGap bytes after the end of
// the previous one, the first not right after "not ". Every occurrence of
// a fragment is tried, so a nearer later occurrence is found.
func matchPattern(text, pattern string) bool {
	head, rest, gapped := strings.Cut(pattern, gapSep)
	for off := 0; ; {
		i := strings.Index(text[off:], head)
		if i < 0 {
			return false
		}
		end := off + i + len(head)
		if !negated(text, off+i) && (!gapped || followedWithin(text[end:], rest)) {
			return true
		}
		off += i + 1
	}
}

// negated reports whether the text at i follows "not ": "not listed",
// "not blocked" state the opposite of the phrase. A pattern that starts
// with "not" says so itself.
func negated(text string, i int) bool {
	return strings.HasSuffix(text[:i], "not ")
}

// followedWithin reports whether text holds pattern (its first fragment
// starting within maxGap bytes, or literally after the space of the gap).
// A fragment right after "not " does not count, as for the first one:
// "mailbox ... full" must not match "mailbox is not full".
func followedWithin(text, pattern string) bool {
	head, rest, gapped := strings.Cut(pattern, gapSep)
	limit := min(len(text), maxGap+len(head))
	for off := 0; off < limit; {
		i := strings.Index(text[off:limit], head)
		if i < 0 {
			return false
		}
		end := off + i + len(head)
		if !negated(text, off+i) && (!gapped || followedWithin(text[end:], rest)) {
			return true
		}
		off += i + 1
	}
	return false
}
