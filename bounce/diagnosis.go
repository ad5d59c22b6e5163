package bounce

import (
	"regexp"
	"strings"
)

// hostNotFoundRe matches "host <name> not found" or "<domain> does not
// exist" (the recipient's domain does not resolve).
var hostNotFoundRe = regexp.MustCompile(`(?:^|[\s:])(?:host )?[a-z0-9\-]+(?:\.[a-z0-9\-]+)+\.?\s+(?:not found|does not exist)`)

// mayBeHostNotFound tells whether text holds the words hostNotFoundRe ends
// with: a substring test that spares most diagnostics the regexp.
func mayBeHostNotFound(text string) bool {
	return strings.Contains(text, "not found") || strings.Contains(text, "does not exist")
}

// reasonOf decides the reason from the status code, the diagnostic, the
// failed SMTP command and, last, the whole notice, and names the rule
// that decided (see Result.Rule).
func reasonOf(x *Result, notice string, tbl *ruleTable) (reason, rule string) {
	diag := &textMatcher{tbl: tbl, text: strings.ToLower(x.Diagnostic)}
	cmd := failedCommand(diag.text) // the answer's own words first, then the notice's
	if cmd == "" {
		cmd = failedCommand(notice)
	}
	if x.Status == "" && strings.HasSuffix(strings.ToLower(x.Recipient), "@googlegroups.com") {
		return ReasonRejected, "recipient:googlegroups" // Google Groups refusing a post, in any language
	}
	meaning := tbl.status(x.Status)
	byStatus := meaning.reason
	for _, r := range primaryOrder {
		if primaryHolds(r, byStatus, diag, cmd) {
			if id := diag.ruleID(r); id != "" && byStatus != r {
				return r, "diagnostic:" + id
			}
			return r, meaning.rule(x.Status)
		}
	}
	if x.Action == "delayed" && diag.has(ReasonNetworkError) {
		// Still queued: a connection that failed or timed out is a network
		// error; the message has not expired yet.
		return ReasonNetworkError, "diagnostic:" + diag.ruleID(ReasonNetworkError)
	}
	if r := diag.first(secondaryOrder); r != "" {
		return r, "diagnostic:" + diag.ruleID(r)
	}
	if x.Action == "delayed" {
		return ReasonExpired, "action:delayed"
	}
	switch cmd {
	case cmdMail:
		return ReasonRejected, "command:mail" // RFC 5321 §4.1.1.2: MAIL FROM refused, the sender is the problem
	case cmdHelo:
		return ReasonBlocked, "command:helo" // refused before any address was given: the client host
	}
	if byStatus != "" {
		return byStatus, meaning.rule(x.Status)
	}
	whole := &textMatcher{tbl: tbl, text: notice[:min(len(notice), 8<<10)]}
	for _, order := range [][]string{primaryOrder, secondaryOrder} {
		if r := whole.first(order); r != "" {
			return adjustForCommand(r, cmd), "notice:" + whole.ruleID(r)
		}
	}
	if x.ReplyCode >= 500 && x.ReplyCode <= 504 {
		return ReasonSyntaxError, "reply-code:syntax" // RFC 5321 §4.2.2: command syntax or sequence
	}
	if diag.text != "" {
		return ReasonOnHold, "fallback:onhold" // the server said something, but nothing we can tell
	}
	return ReasonUndefined, "fallback:undefined"
}

// primaryHolds tells whether reason r applies given the reason the status
// code names, the lower-case diagnostic and the failed command. An
// "unknown user" text counts as such in answer to RCPT TO; in answer to
// DATA, or when the stage is unknown, the bare "user unknown" is what
// content filters answer, so it counts as filtered.
func primaryHolds(r, byStatus string, diag *textMatcher, cmd string) bool {
	if cmd == cmdMail && (r == ReasonUserUnknown || r == ReasonHostUnknown || r == ReasonFiltered) {
		return false // MAIL FROM refused: the sender's address is the problem
	}
	if (r == ReasonUserUnknown || r == ReasonHostUnknown || r == ReasonFiltered) && matchAnyPhrase(diag.text, senderVerifyPhrases...) {
		return false // the unknown user or domain it quotes is the sender's
	}
	switch r {
	case ReasonUserUnknown:
		if byStatus == ReasonUserUnknown {
			return diag.has(ReasonUserUnknown) || !vetoesUnknownUser(diag)
		}
		if !diag.has(ReasonUserUnknown) || diag.has(ReasonFiltered) || isGreylisting(diag.text) {
			return false
		}
		if otherSubject(byStatus) {
			return false
		}
		switch cmd {
		case cmdRcpt:
			return true
		case cmdMail:
			return false
		}
		// After DATA, or at an unknown stage, the bare "user unknown" is
		// what content filters answer (KDDI, NTT docomo, Yahoo! Japan).
		return !matchAnyPhrase(diag.text, "user unknown", "unknown user") ||
			diag.tbl.hasOther(diag.text, ReasonUserUnknown, "user unknown", "unknown user")
	case ReasonFiltered:
		text := diag.has(ReasonFiltered) || diag.has(ReasonUserUnknown) && !isGreylisting(diag.text) && !otherSubject(byStatus)
		if byStatus == ReasonFiltered {
			return text
		}
		if cmd == cmdRcpt {
			// At RCPT TO only an explicit refusal by the recipient's own
			// settings ("blocked by the recipient"), not a bare "user
			// unknown", is filtered.
			return diag.has(ReasonFiltered) && !diag.has(ReasonUserUnknown)
		}
		return cmd != cmdMail && text
	case ReasonHostUnknown:
		if byStatus != r && matchAnyPhrase(diag.text, "dns error", "dns query failed", "dns type", "name service error") {
			return false // a failed DNS lookup, not a missing domain
		}
		return byStatus == r || diag.has(r) || mayBeHostNotFound(diag.text) && hostNotFoundRe.MatchString(diag.text)
	case ReasonContentError:
		return diag.has(r) // X.6.x alone is too vague to beat the other reasons
	}
	return byStatus == r || diag.has(r)
}

// otherSubject tells whether the reason a status code names is about
// another subject than the recipient's mailbox (the domain, the sender,
// the client's DNS, the route or the queue): words about an address or a
// user not existing are then about that subject, so they make the
// failure neither an unknown user nor a recipient's filter.
func otherSubject(byStatus string) bool {
	switch byStatus {
	case ReasonHostUnknown, ReasonRejected, ReasonRequirePTR, ReasonNetworkError, ReasonExpired:
		return true
	}
	return false
}

// senderVerifyPhrases say that the server verified the sender's address
// and failed: Exim quotes the callout's answer ("550-Response: 550 5.1.1
// <sender>: User unknown", then "550 Sender verify failed"), so an unknown
// user or domain in such a diagnostic is the sender's, not the recipient's.
var senderVerifyPhrases = []string{"sender verify failed", "sender verification failed"}

// senderSidePhrases are refusals of the sending side that some servers
// answer with a recipient's 5.1.1 ("Recipient rejected: dynamic IP not
// allowed"): they do not make a 5.1.1 anything but an unknown user.
var senderSidePhrases = []string{"administrative prohibition", "null sender", "batv", "dynamic ip"}

// vetoesUnknownUser tells whether a diagnostic that comes with a 5.1.1
// states another cause of the refusal (relaying, a full or moved mailbox,
// a blocked client or a refused sender other than by senderSidePhrases).
func vetoesUnknownUser(diag *textMatcher) bool {
	if diag.any(ReasonNoRelaying, ReasonMailboxFull, ReasonHasMoved, ReasonNotAccept) {
		return true
	}
	return diag.any(ReasonBlocked, ReasonRejected) &&
		(diag.tbl.hasOther(diag.text, ReasonBlocked, senderSidePhrases...) ||
			diag.tbl.hasOther(diag.text, ReasonRejected, senderSidePhrases...))
}

// greylistPhrases name greylisting (RFC 6647): a first delivery attempt
// deferred on purpose, which some servers word as "mailbox unavailable
// (greylisted)". The mailbox exists; only a status code that itself names an
// unknown user makes such an answer one.
var greylistPhrases = []string{"greylist", "graylist", "grey-list", "gray-list", "grey list", "gray list",
	"graue liste", "liste grise", "lista gris", "lista grigia", "lista cinza", "grijze lijst",
	"серый список", "сірий список", "szara lista", "šedá listina", "grålista", "gråliste", "harmaalista",
	"szürkelista", "listă gri", "gri liste", "グレイリスト", "グレーリスト", "灰名单", "灰名單", "그레이리스트"}

// isGreylisting reports whether a lower-case diagnostic says the attempt
// was greylisted.
func isGreylisting(text string) bool {
	return matchAnyPhrase(text, greylistPhrases...)
}

// matchAnyPhrase reports whether text contains any of the phrases.
func matchAnyPhrase(text string, phrases ...string) bool {
	for _, p := range phrases {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}
