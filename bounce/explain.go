package bounce

import (
	"fmt"
	"strings"
)

// Explain returns the decision path of the report as text, one line per
// step: the kind, then for each result the diagnostic read, the status and
// reply code, the rule that decided the reason (Result.Rule) and the
// built-in rule an operator rule overrode, and how the hard flag followed
// from it. `mailgate inspect --explain` prints it.
func (r *Report) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kind: %s\n", r.Kind)
	for i, x := range r.Results {
		fmt.Fprintf(&b, "result %d: recipient %s\n", i+1, x.Recipient)
		if x.Action != "" {
			fmt.Fprintf(&b, "  action: %s\n", x.Action)
		}
		fmt.Fprintf(&b, "  diagnostic: %q\n", x.Diagnostic)
		fmt.Fprintf(&b, "  status: %s  reply code: %d\n", x.Status, x.ReplyCode)
		fmt.Fprintf(&b, "  rule: %s\n", x.Rule)
		if x.Overrides != "" {
			fmt.Fprintf(&b, "  overrides built-in rule: %s\n", x.Overrides)
		}
		fmt.Fprintf(&b, "  reason: %s\n", x.Reason)
		fmt.Fprintf(&b, "  hard: %v (%s)\n", x.Hard, hardWhy(x))
	}
	return b.String()
}

// hardWhy says where a result's hard flag came from.
func hardWhy(x Result) string {
	if x.Hard != IsHard(x.Reason, x.Status) {
		return "set by the rule"
	}
	if x.Hard {
		return "the reason means the address is bad"
	}
	return "the reason leaves the address valid"
}
