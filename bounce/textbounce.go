package bounce

import (
	"regexp"
	"strings"
)

// daemonLocalParts are the local parts bounces come from.
var daemonLocalParts = map[string]bool{
	"mailer-daemon": true, "postmaster": true, "mail-daemon": true, "maildaemon": true,
	"mailerdaemon": true, "mdaemon": true, "mail-delivery-system": true,
	"mailer_daemon": true, "bounce": true, "bounces": true, "nobody": true,
}

// bounceSubjects are lower-case subject fragments of delivery failure
// notices.
var bounceSubjects = []string{
	"undeliver", "delivery status notification", "failure notice", "returned mail",
	"mail delivery failed", "delivery failure", "undelivered mail", "nondeliverable",
	"non-deliverable", "non remis", "delivery notification", "mail system error",
	"could not send", "warning: could not", "delivery has failed", "not delivered",
	"delivery problem", "mail delivery failure", "delivery report", "rejected:",
	"message delivery has failed", "permanent error", "returned to sender",
	"delivery final failure", "mail could not be delivered", "unzustellbar",
	"benachrichtung", "échec", "delayed mail", "delivery delayed", "mail failure",
	"failed delivery", "delivery error", "message status", "error sending",
	"mail delivery problem", "notice of delivery failure", "unable to deliver",
	"unsent message", "returned mail", "mail delivery system", "loop alert", "bounced mail",
	"warning: message", // Exim's delay warning: "Warning: message 1abc-... delayed 24 hours"
	"nicht zustellbar", "no entregado", "no se puede entregar", "mancato recapito", "non recapitabile", "não entregue", "onbestelbaar",
}

// looksLikeBounce reports whether a message without a DSN part is a
// delivery failure notice: sent by a mailer daemon, titled like one,
// naming failed recipients, or a list server's refusal returning the
// post.
func (m *msg) looksLikeBounce() bool {
	if m.h.Get("X-Failed-Recipients") != "" {
		return true
	}
	if m.t.mediaType == "multipart/report" {
		return isDeliveryReport(m.t.params["report-type"])
	}
	from := strings.ToLower(m.get("From"))
	local, _, _ := strings.Cut(headerAddress(from), "@")
	if daemonLocalParts[local] || strings.Contains(from, "mailer-daemon") || strings.Contains(from, "mail delivery") ||
		strings.Contains(local, "postmaster") || strings.Contains(local, "post_master") {
		return true
	}
	if m.h.Has("X-MLServer") && m.cut >= 0 {
		return true // fml (and its kin) returning a post it refused, with its own error text
	}
	if m.isPersonalAnswer() {
		return false // "Re: parcel not delivered" from a person is a reply
	}
	if isAutoReplySubject(m.get("Subject")) {
		return false // "Automatic reply: Undeliverable parcel" answers a message about a parcel
	}
	if m.h.Has("X-Autoreply") || m.h.Has("X-Autorespond") || m.h.Has("X-Autoresponder") {
		return false // an autoresponder's own header, whatever its text says of undeliverable mail
	}
	subj := strings.ToLower(m.get("Subject"))
	for _, s := range bounceSubjects {
		if strings.Contains(subj, s) {
			return true // also "Fwd: Returned mail": a bounce passed on by hand
		}
	}
	return !m.answers() && !m.hasForwardSubject() && hasBounceOpening(m.noticeText())
}

// isPersonalAnswer reports a message titled and threaded as an answer
// ("Re: …" with In-Reply-To or References).
func (m *msg) isPersonalAnswer() bool {
	if !m.answers() {
		return false
	}
	subj := strings.ToLower(strings.TrimSpace(m.get("Subject")))
	for _, p := range replyPrefixes {
		if strings.HasPrefix(subj, p) {
			return true
		}
	}
	return false
}

// bounceOpenings are lower-case sentences that open a failure notice.
var bounceOpenings = []string{
	"could not be delivered to", "was not delivered to", "delivery to the following recipient",
	"couldn't be delivered", "unable to deliver your message", "i wasn't able to deliver",
	"following address(es) failed", "delivery has failed to these recipients",
	"message could not be delivered", "the following addresses had permanent fatal errors",
	"your message was not delivered", "delivery failed", "undeliverable",
	"konnte nicht zugestellt werden", "nicht zugestellt werden", "n'a pas pu être remis",
	"impossible de remettre", "ne peut pas être remis", "no se pudo entregar",
}

// hasBounceOpening reports whether the start of a notice reads like a
// delivery failure.
func hasBounceOpening(notice string) bool {
	head := notice[:min(len(notice), 2000)]
	for _, s := range bounceOpenings {
		if strings.Contains(head, s) {
			return true
		}
	}
	return false
}

// isDeliveryReport reports whether a multipart/report's report-type
// (RFC 6522 §3) is about delivery; read receipts (disposition-notification,
// RFC 8098) and TLS or DMARC reports are not.
func isDeliveryReport(reportType string) bool {
	switch strings.ToLower(reportType) {
	case "", "delivery-status", "global-delivery-status", "delivery-report":
		return true
	}
	return false
}

// classifyTextBounce handles bounces without a DSN part by reading the
// notice text: the failed recipients are the addresses it names (other
// than the sender's), and each one's diagnostic is the nearest line with
// a reply or status code.
func classifyTextBounce(m *msg, r *Report) bool {
	if !m.looksLikeBounce() {
		return false
	}
	m.addAttachedDetails()
	notice := m.noticeText()
	lines := m.lines()
	rcpts := m.textRecipients(notice)
	if len(rcpts) == 0 {
		rcpts = []string{m.fallbackRecipient()}
	}
	for _, rcpt := range rcpts {
		x := Result{Recipient: rcpt, Action: "failed"}
		x.Diagnostic = diagnosticNear(lines, rcpt)
		if x.Diagnostic == "" {
			x.Diagnostic = diagnosticNear(lines, "")
		}
		x.Status = findStatus(x.Diagnostic)
		if x.Status == "" {
			x.Status = statusNear(lines, rcpt, findReplyCode(x.Diagnostic))
		}
		if x.Status == "" && len(rcpts) == 1 && findReplyCode(x.Diagnostic) == 0 && !statesReason(m.tbl, x.Diagnostic) {
			// The reason stated once, above the list of recipients it
			// applies to (MailMarshal: "Could not be delivered because of
			// 552 5.2.2 ...", then "The following recipients were affected").
			if i := soleStatusLine(lines, rcpt); i >= 0 {
				x.Diagnostic = lines.continued(i)
				x.Status = findStatus(x.Diagnostic)
			}
		}
		if isTemporaryNotice(notice) && statusClass(x.Status) != '5' {
			x.Action = "delayed"
		}
		finishResult(&x, notice, m.tbl)
		r.Results = append(r.Results, x)
	}
	r.Kind = kindOf(r.Results)
	return true
}

// textRecipients returns the addresses the notice names as recipients, in
// order, without the bounce's own addresses or the original sender's.
func (m *msg) textRecipients(notice string) []string {
	skip := m.ownAddresses()
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		a = strings.ToLower(strings.Trim(a, ".-"))
		if a == "" || skip[a] || seen[a] || isDaemonAddress(a) {
			return
		}
		seen[a] = true
		out = append(out, a)
	}
	for _, a := range headerAddresses(m.h.Get("X-Failed-Recipients")) {
		add(a)
	}
	if len(out) > 0 {
		return out
	}
	for _, line := range strings.Split(notice, "\n") {
		if strings.IndexByte(line, '@') < 0 || skipLine(line) {
			continue
		}
		if strings.IndexByte(line, '<') >= 0 {
			for _, a := range bracketAddrRe.FindAllStringSubmatch(line, -1) {
				add(a[1])
			}
			line = bracketAddrRe.ReplaceAllString(line, " ")
		}
		for _, loc := range addrRe.FindAllStringIndex(line, -1) {
			add(unquoteAddress(line, loc[0], loc[1]))
		}
	}
	return out
}

// unquoteAddress returns the address addrRe found at line[i:end] without
// the opening single quote it took for a local part's atext when the
// address is quoted ('a@b.example', rcpt='a@b.example', as IceWarp and
// others name it): a quote right after the domain shows the quoting, and
// the address then starts after the first quote before its '@'.
func unquoteAddress(line string, i, end int) string {
	a := line[i:end]
	if end < len(line) && line[end] == '\'' {
		if q := strings.IndexByte(a[:strings.IndexByte(a, '@')], '\''); q >= 0 {
			return a[q+1:]
		}
	}
	return a
}

// quotedAt reports whether line[i:end] stands between single quotes
// ('a@b.example'). An apostrophe is an atext character (RFC 5322 §3.2.3),
// so addrRe takes the opening quote into the local part; a quote right
// after the domain, where none may stand, shows the pair is quoting.
func quotedAt(line string, i, end int) bool {
	return i > 0 && line[i-1] == '\'' && end < len(line) && line[end] == '\''
}

// bracketAddrRe finds an address in angle brackets ("<a@b>:", as Postfix
// and qmail name the failed recipient), whatever its characters: an
// internationalised address (RFC 6531) that addrRe, ASCII only, would cut
// at its first non-ASCII letter.
var bracketAddrRe = regexp.MustCompile(`<([^<>\s@:"]+@[^<>\s@:"]+\.[^<>\s@:"]+)>`)

// ownAddresses are the lower-case addresses that are not failed recipients:
// the notice's From and To, and the returned original's sender.
func (m *msg) ownAddresses() map[string]bool {
	skip := map[string]bool{}
	for _, v := range []string{m.h.Get("From"), m.h.Get("To"), m.h.Get("Reply-To"),
		m.origGet("From"), m.origGet("Return-Path"), m.origGet("Sender")} {
		for _, a := range headerAddresses(v) {
			skip[strings.ToLower(a)] = true
		}
	}
	return skip
}

// isDaemonAddress reports whether a is a mailer daemon's or a
// postmaster's address (daemonLocalParts): the notice's own contacts ("ask
// postmaster@... for help"), not failed recipients.
func isDaemonAddress(a string) bool {
	local, _, _ := strings.Cut(a, "@")
	return daemonLocalParts[local]
}

// skipLine reports whether a notice line is a header or trace line whose
// addresses are message ids or senders, not recipients.
func skipLine(l string) bool {
	l = strings.TrimSpace(l)
	for _, p := range []string{"message-id:", "in-reply-to:", "references:", "received:", "from:",
		"return-path:", "sender:", "reply-to:", "by ", "id ", "envelope-from", "x-", "dkim", "mail from"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

// statesReason reports whether a diagnostic states a failure reason the
// rules know: one that does is not replaced by a status found elsewhere.
func statesReason(tbl *ruleTable, diag string) bool {
	text := strings.ToLower(diag)
	return tbl.hasAny(text, primaryOrder...) || tbl.hasAny(text, secondaryOrder...)
}

// soleStatusLine returns the index of the line above the first mention of
// rcpt that holds the notice's only failure status (class 4 or 5, every
// such line the same) beside an SMTP reply code of its class ("552
// 5.2.2"), or -1 when there is none or more than one. The reply code keeps
// a version number or a date in a quoted subject from passing for a
// status.
func soleStatusLine(n noticeLines, rcpt string) int {
	at, status := -1, ""
	rcpt = strings.ToLower(rcpt)
	for i, l := range n.lower {
		if strings.Contains(l, rcpt) {
			break
		}
		s := findStatus(l)
		if s == "" || s[0] == '2' || findReplyCode(l)/100 != int(s[0]-'0') {
			continue
		}
		if status != "" && s != status {
			return -1
		}
		if status == "" {
			at, status = i, s
		}
	}
	return at
}

// statusNear returns the first failure status (class 4 or 5) on another
// line of the notice that names rcpt, of the reply code's class when
// there is one: Sendmail's "(reason: 550 Host unknown)" is followed by a
// transcript line "550 5.1.2 <a@b>... Host unknown".
func statusNear(n noticeLines, rcpt string, code int) string {
	if rcpt == "" {
		return ""
	}
	rcpt = strings.ToLower(rcpt)
	for _, l := range n.lower {
		if addressIndex(l, rcpt) < 0 {
			continue
		}
		if s := findStatus(l); s != "" && s[0] != '2' && (code == 0 || int(s[0]-'0') == code/100) {
			return s
		}
	}
	return ""
}
