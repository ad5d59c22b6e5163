package bounce

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Rule is a classification rule of a rule file (see ParseRules): a phrase
// rule (Pattern set) or a status rule (Status set).
//
// A phrase rule from an operator file decides a result whose diagnostic
// contains Pattern (compared in lower case): reason Reason, hard or soft
// as Hard says, whatever the built-in rules would decide. Operator phrase
// rules are tried in order after the built-in decision; the first that
// matches wins.
//
// A status rule gives an RFC 3463 status code its meaning: the reason the
// code names when the built-in precedence (bounce/diagnosis.go) weighs it
// against the diagnostic's phrases. Operator status rules replace the
// built-in meaning of their codes.
type Rule struct {
	// ID names the rule in Result.Rule: the id given in the file, else
	// "operator:LINE" for an operator rule. A result decided by a
	// built-in status rule carries "status:CODE" with its own code.
	ID string
	// Pattern is the lower-case text the diagnostic must contain; " ... "
	// separates fragments that must occur in this order, each within
	// maxGap bytes after the previous one (see ParseRules). Empty for a
	// status rule.
	Pattern string
	// Status is the code of a status rule, as ParseRules writes it:
	// "5.1.1" or "4.7.1" for one class, "X.2.2" for both classes 4 and
	// 5. Empty for a phrase rule.
	Status string
	// Reason is one of the failure Reason constants.
	Reason string
	// Hard is true for "hard" (the address is bad), false for "soft". A
	// status rule's flag is the one IsHard gives its reason and code (the
	// permanent class for an X code): the result's flag follows IsHard.
	Hard bool
}

// ParseRules reads an operator rule file (MAILGATE_BOUNCE_RULES). Each
// non-blank line that does not start with # is a phrase rule or a status
// rule:
//
//	PATTERN => REASON hard|soft [ID]
//	status CODE => REASON hard|soft [ID]
//
// PATTERN is matched case-insensitively as a substring of the diagnostic
// (surrounding spaces trimmed, "=>" may occur inside it: the last one
// splits). " ... " inside it stands for a gap of at most 60 bytes, so
// that "domain ... does not exist" matches "domain example.org does not
// exist" (and still the literal text); an occurrence right after "not "
// does not count ("not listed" is no listing); REASON is a failure reason
// (userunknown, mailboxfull, …);
// ID, optional, names the rule in results (default "operator:LINE"). The
// first phrase rule that matches decides the reason and the hard flag,
// over any built-in decision.
//
// A line whose left side is the word "status" (in any case) and one more
// word that starts like a code (a digit or X, then a dot) is a status
// rule; "status pending" stays a phrase. CODE is an RFC 3463 code of class 4 or 5
// ("5.7.1") or of both ("X.7.1"), subject and detail of 1–3 digits without
// leading zeros. It changes what the code means where the built-in
// precedence weighs it against the diagnostic's phrases, so it decides
// only results the status code decides (their Rule is then ID, and
// Overrides "status:CODE" when a built-in line gave the code a meaning).
// Its hard|soft must be what IsHard gives REASON for the code
// (for an X code, for class 5): the flag of a status-decided result always
// follows IsHard, and a phrase rule is the way to force one. Precedence,
// most specific first: an operator line for the code's class, an
// operator X line, a built-in line for the class, a built-in X line;
// within a file the first line for a code wins.
//
// The error names the first bad line.
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
	var r Rule
	left := strings.ToLower(strings.TrimSpace(line[:i]))
	if w := strings.Fields(left); len(w) == 2 && w[0] == "status" && looksLikeCode(w[1]) {
		code, err := parseStatusCode(w[1])
		if err != nil {
			return Rule{}, err
		}
		r.Status = code
	} else {
		r.Pattern = left
		if r.Pattern == "" {
			return Rule{}, fmt.Errorf("empty pattern")
		}
		if strings.Contains(" "+r.Pattern+" ", " ...  ... ") || strings.HasPrefix(r.Pattern, "... ") || strings.HasSuffix(r.Pattern, " ...") {
			return Rule{}, fmt.Errorf("empty fragment around \" ... \"")
		}
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
	if r.Status != "" {
		if want := IsHard(r.Reason, statusForClass(r.Status)); r.Hard != want {
			return Rule{}, fmt.Errorf("status %s => %s is %s, not %s: a status rule's flag is IsHard's (a phrase rule can set one)",
				r.Status, r.Reason, hardWord(want), f[1])
		}
	}
	if len(f) == 3 {
		r.ID = f[2]
	}
	return r, nil
}

// hardWord is "hard" or "soft".
func hardWord(hard bool) string {
	if hard {
		return "hard"
	}
	return "soft"
}

// parseStatusCode checks the CODE of a status rule (lower case): class 4,
// 5 or x, then subject and detail of 1–3 digits without leading zeros (as
// findStatus reads codes, so that the rule can match), and returns it with
// an upper-case X.
func parseStatusCode(code string) (string, error) {
	class, rest, _ := strings.Cut(code, ".")
	subject, detail, ok := strings.Cut(rest, ".")
	switch {
	case !ok || !isStatusNumber(subject) || !isStatusNumber(detail):
		return "", fmt.Errorf("bad status code %q: want CLASS.SUBJECT.DETAIL, e.g. 5.1.1 or X.2.2", code)
	case class == "2":
		return "", fmt.Errorf("status code %q is a success (class 2): a status rule is for class 4, 5 or X", code)
	case class != "4" && class != "5" && class != "x":
		return "", fmt.Errorf("bad status code %q: the class must be 4, 5 or X", code)
	}
	return strings.ToUpper(class) + "." + subject + "." + detail, nil
}

// isStatusNumber reports whether s is a subject or detail of a status
// code: 1–3 digits, no leading zero.
func isStatusNumber(s string) bool {
	if s == "" || len(s) > 3 || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// statusForClass returns the code of a status rule with an X class
// replaced by 5: the permanent failure whose hard flag the rule states.
func statusForClass(code string) string {
	if code[0] == 'X' {
		return "5" + code[1:]
	}
	return code
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
			if x.Overrides == "" { // else an operator status rule decided: keep the built-in one it replaced
				x.Overrides = x.Rule
			}
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

// looksLikeCode reports whether w (lower case) starts like a status code, a
// digit or "x" then a dot: the second word of a status rule, which
// parseStatusCode then checks in full, so that "status 5.1" is an error,
// not a phrase.
func looksLikeCode(w string) bool {
	return len(w) >= 2 && w[1] == '.' && (w[0] == 'x' || w[0] >= '0' && w[0] <= '9')
}
