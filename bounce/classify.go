package bounce

import (
	"slices"
	"strings"
)

// classifyDSN reads a message/delivery-status or message/global-delivery-
// status part (RFC 3464 §2, RFC 6533 §3). A report without any
// per-recipient block is left to the text heuristics.
func classifyDSN(m *msg, r *Report) bool {
	var res []Result
	var local []bool
	var category []string
	for i := range m.t.parts {
		p := &m.t.parts[i]
		if p.enclosed && !m.looksLikeBounce() {
			continue // a report forwarded or attached by a person
		}
		if p.mediaType == "message/delivery-status" || p.mediaType == "message/global-delivery-status" {
			d := parseDSNFields(p.body)
			r, l := dsnResults(d)
			res, local, category = append(res, r...), append(local, l...), append(category, bounceCategories(d)...)
		}
	}
	if len(res) == 0 {
		d := parseDSNFields(inlineDSN(m.body))
		res, local = dsnResults(d)
		category = bounceCategories(d)
	}
	if len(res) == 0 {
		return false
	}
	text := m.noticeText()
	lines := m.lines()
	named := map[string]bool{}
	for _, x := range res {
		if x.Recipient != "" {
			named[strings.ToLower(x.Recipient)] = true
		}
	}
	for i := range res {
		if res[i].Recipient == "" {
			res[i].Recipient = m.noticeRecipient(text, named)
		}
		if res[i].Diagnostic == "" {
			res[i].Diagnostic = diagnosticNear(lines, res[i].Recipient)
		}
		finishResult(&res[i], text, m.tbl)
		if local[i] {
			markMailerError(&res[i], m.tbl)
		}
		markCategory(&res[i], category[i])
	}
	r.Results = slices.DeleteFunc(res, func(x Result) bool { return x.Recipient == "" && len(named) > 0 })
	r.Kind = kindOf(r.Results)
	return true
}

// inlineDSN returns the delivery-status fields of a report whose MIME
// structure is broken (no top-level Content-Type), where the
// "Content-Type: message/delivery-status" part header shows up inside the
// text: the lines after it up to the next boundary line.
func inlineDSN(body string) []byte {
	i := indexFoldAt(body, "content-type: message/delivery-status", '/')
	if i < 0 {
		return nil
	}
	rest := body[i:]
	if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
		rest = rest[nl+1:]
	}
	if j := strings.Index(rest, "\n--"); j >= 0 {
		rest = rest[:j]
	}
	return []byte(rest)
}

// indexFoldAt returns the index of the first occurrence of the lower-case
// ASCII pattern in text, in any case, or -1. It looks only where anchor,
// a byte of pattern that is the same in both cases and rare in mail text
// ('/'), occurs: this spares lower-casing the whole text.
func indexFoldAt(text, pattern string, anchor byte) int {
	k := strings.IndexByte(pattern, anchor)
	for off := k; k >= 0 && off < len(text); {
		j := strings.IndexByte(text[off:], anchor)
		if j < 0 {
			return -1
		}
		start := off + j - k
		if start+len(pattern) <= len(text) && strings.EqualFold(text[start:start+len(pattern)], pattern) {
			return start
		}
		off += j + 1
	}
	return -1
}

// markMailerError sets the reason of a failure reported by a local
// delivery program (procmail, a pipe): a mailer error, unless the program
// said the mailbox or the system was full or the message too big.
func markMailerError(x *Result, tbl *ruleTable) {
	if x.Reason == ReasonDelivered || tbl.hasAny(strings.ToLower(x.Diagnostic), ReasonMailboxFull, ReasonMesgTooBig, ReasonExceedLimit, ReasonSystemFull) {
		return
	}
	x.Reason, x.Rule, x.Overrides = ReasonMailerError, "local-mailer", ""
	x.Hard = IsHard(x.Reason, x.Status)
}

// powerMTACategories are the reasons PowerMTA's bounce categories name
// (X-PowerMTA-BounceCategory, a per-recipient field of its DSNs; the
// category names are PowerMTA's documented ones). "other" and unknown
// categories name none; "spam-related" is left out too, since PowerMTA's
// default patterns put blocklists ("blocked", "blacklist", RBL) under it.
var powerMTACategories = map[string]string{
	"bad-mailbox": ReasonUserUnknown, "bad-domain": ReasonHostUnknown,
	"quota-issues": ReasonMailboxFull, "inactive-mailbox": ReasonSuspend,
	"message-expired": ReasonExpired, "no-answer-from-host": ReasonNetworkError,
	"bad-connection": ReasonNetworkError, "policy-related": ReasonPolicyViolation,
	"relaying-issues": ReasonNoRelaying, "virus-related": ReasonVirusDetected,
	"content-related": ReasonContentError, "invalid-sender": ReasonRejected,
	"protocol-errors": ReasonSyntaxError, "routing-errors": ReasonSystemError,
	"bad-configuration": ReasonSystemError,
}

// bounceCategories returns, for each recipient block of d, the lower-case
// bounce category the reporting MTA stated (PowerMTA's
// X-PowerMTA-BounceCategory), or "".
func bounceCategories(d dsnFields) []string {
	out := make([]string, len(d.recipients))
	for i, f := range d.recipients {
		out[i] = strings.ToLower(strings.TrimSpace(f["x-powermta-bouncecategory"]))
	}
	return out
}

// markCategory sets the reason of a failure to the one the reporting
// MTA's own bounce category names (the sending MTA read the remote answer
// with its operator's patterns and said what it meant), where it cannot
// flip hard and soft against the rules: when the rules found nothing
// (a fallback), or when both reasons are soft. PowerMTA's patterns are
// coarse ("mailbox unavailable" is bad-mailbox, greylisting included), so
// they never make a result the rules read as soft hard, and a delay stays
// a delay.
func markCategory(x *Result, category string) {
	reason := powerMTACategories[category]
	if reason == "" || x.Action != "failed" || x.Reason == reason {
		return
	}
	if !strings.HasPrefix(x.Rule, "fallback:") && (x.Hard || IsHard(reason, x.Status)) {
		return
	}
	x.Reason, x.Rule, x.Overrides = reason, "category:"+category, ""
	x.Hard = IsHard(x.Reason, x.Status)
}

// kindOf derives the report kind from its results: a failure makes it a
// bounce, else a delay makes it delayed, else it is a delivery report.
func kindOf(res []Result) string {
	delayed, delivered := false, false
	for _, x := range res {
		switch x.Action {
		case "delayed":
			delayed = true
		case "delivered", "relayed", "expanded":
			delivered = true
		default:
			return KindBounce
		}
	}
	switch {
	case delayed:
		return KindDelayed
	case delivered:
		return KindDelivered
	}
	return KindBounce
}

// finishResult fills the status, reply code, reason and hard flag of a
// result from its diagnostic, falling back on the notice text, by the
// rules of tbl.
func finishResult(x *Result, notice string, tbl *ruleTable) {
	if x.ReplyCode == 0 {
		x.ReplyCode = findReplyCode(x.Diagnostic)
	}
	if s := findStatus(x.Diagnostic); s != "" && (x.Status == "" || isVague(x.Status)) && sameClass(s, x.Status) {
		x.Status = s
	}
	switch x.Action {
	case "delivered", "relayed", "expanded":
		x.Reason, x.Rule = ReasonDelivered, "action:delivered"
		if x.Status == "" {
			x.Status = "2.0.0"
		}
		return
	}
	x.Reason, x.Rule = reasonOf(x, notice, tbl)
	if m := tbl.status(x.Status); m.overrides && x.Rule == m.operator {
		x.Overrides = "status:" + x.Status // an operator status rule replaced the built-in meaning
	}
	if x.Status == "" {
		x.Status = pseudoStatus(x, notice)
	}
	x.Hard = IsHard(x.Reason, x.Status)
}

// isVague reports whether a status carries only its class (X.0.0).
func isVague(s string) bool {
	return len(s) == 5 && s[1:] == ".0.0"
}

// sameClass reports whether two status codes share the class, or b is
// empty.
func sameClass(a, b string) bool {
	return b == "" || statusClass(a) == statusClass(b)
}

// pseudoStatus invents a status for a result whose report carried none:
// class 4 for delays and temporary failures, else 5, with the reply code's
// class taking precedence.
func pseudoStatus(x *Result, notice string) string {
	class := "5"
	switch {
	case x.ReplyCode >= 400 && x.ReplyCode < 500:
		class = "4"
	case x.ReplyCode >= 500:
		class = "5"
	case x.Action == "delayed", isTemporaryNotice(notice):
		class = "4"
	}
	return class + ".0.0"
}

// temporaryNotices are lower-case sentences by which delay warnings say
// the message is still queued (Postfix and Sendmail: "this is a warning
// only", "you do not need to resend"; Exim, qmail and Exchange: "will
// retry", "not yet been delivered"; OpenSMTPD: "only a temporary failure").
var temporaryNotices = []string{
	"will continue", "will be retried", "will keep trying", "still trying", "not yet been delivered",
	"delivery delayed", "is delayed", "do not need to resend", "warning only", "warning message only",
	"will retry", "will try again", "temporary failure report", "has been delayed",
}

// permanentNotices are lower-case sentences by which failure notices say
// delivery was given up; they outweigh temporaryNotices ("a temporary
// failure ... giving up").
var permanentNotices = []string{"permanent error", "permanent failure", "fatal error", "giving up", "not going to try again"}

// isTemporaryNotice reports whether the notice text says delivery is
// still being tried.
func isTemporaryNotice(lower string) bool {
	return matchAnyPhrase(lower, temporaryNotices...) && !matchAnyPhrase(lower, permanentNotices...)
}

// noticeRecipient is the recipient of a report block that names none:
// the one address the notice text names (X-Failed-Recipients first) that
// no other block of the report names (named, lower case). When other
// blocks name recipients and the text leaves no single other one, it is
// "": the block is a duplicate or a message-level block, and is dropped.
// A report whose blocks name nobody falls back on fallbackRecipient when
// the text names none or several.
func (m *msg) noticeRecipient(notice string, named map[string]bool) string {
	var free []string
	for _, a := range m.textRecipients(notice) {
		if !named[a] {
			free = append(free, a)
		}
	}
	switch {
	case len(free) == 1:
		return free[0]
	case len(named) > 0:
		return ""
	}
	return m.fallbackRecipient()
}

// fallbackRecipient is the recipient to name when the report names none:
// X-Failed-Recipients, else the To of the returned original.
func (m *msg) fallbackRecipient() string {
	if a := headerAddress(m.h.Get("X-Failed-Recipients")); a != "" {
		return a
	}
	return headerAddress(m.origGet("To"))
}
