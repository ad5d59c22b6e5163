package bounce

import "strings"

// reasonPhrases lists, per reason, the lower-case phrases by which MTAs and
// providers state it. Written from the texts of real bounces.
var reasonPhrases = map[string][]string{
	ReasonMailboxFull: {
		"not enough storage", "insufficient storage", "mailfolder is full", "mailbox over quota", "has too many messages", "over its quota", "over the storage",
		"mailbox full", "mailbox is full", "over quota", "quota exceeded",
		"exceeded storage", "mailbox size limit", "insufficient disk", "exceeds quota",
		"quota exceed", "full mailbox", "mailbox has exceeded", "account is full",
		"disk quota", "storage limit", "mail quota", "out of storage", "user has exceeded",
		"mailbox exceeded", "mailbox is over", "is over quota", "too much mail", "mailbox is full",
		"their mailbox is full", "exceeds allowed size", "boîte pleine", "postfach voll",
	},
	ReasonMesgTooBig: {
		"message too large", "message too big", "size exceeds", "exceeds size limit",
		"message is too large", "too large for", "mail size limit", "line limit exceeded",
		"message size exceeds", "exceeds the maximum size", "message file too big",
	},
	ReasonExceedLimit: {"message length exceeds", "exceeds limit set by recipient", "exceeds administrative limit"},
	ReasonSuspend: {
		"account is disabled", "mailbox is disabled", "recipient suspended", "account expired", "currently suspended",
		"account suspended", "mailbox suspended", "is suspended", "has been suspended",
		"account disabled", "has been disabled", "mailbox disabled", "is disabled",
		"inactive account", "account is inactive", "is inactive", "mailbox is inactive",
		"account has been locked", "account is locked", "temporary locked", "temporarily locked", "deactivated",
		"account closed", "expired account", "is frozen", "account is blocked",
		"recipient account is blocked", "compte du destinataire est bloque",
	},
	ReasonHasMoved: {"has moved", "address has changed", "moved to", "no longer valid; moved"},
	ReasonNoRelaying: {
		"relaying prohibited", "relay not allowed",
		"relay access denied", "relaying denied", "relay not permitted", "not permitted to relay",
		"relaying not allowed", "unable to relay", "relay denied", "we do not relay",
		"not allowed to relay", "no relaying", "relay prohibited", "is not a gateway",
		"not configured to relay", "relaying mail to", "email address is not verified",
	},
	ReasonAuthFailure: {
		"dmarc", "spf check", "spf fail", "failed spf", "spf)", "dkim", "sender policy framework", "bad spf", "spf record", "unauthenticated email",
		"authentication checks failed", "authentication check failed", "is not authorized to send",
	},
	ReasonUserUnknown: {
		"address unknown", "email address could not be found", "is not a known user", "not an active address", "mailbox invalid", "no mailbox here by that name", "no such person", "not a valid recipient", "not a valid user", "not a local address", "unknown mailbox", "user not known", "badrcptto", "validrcptto", "no one at this address", "utilisateur inconnu", "nessun utente", "no existe", "adresse nicht gefunden", "no such address", "recipient is not local", "invalid or unknown virtual user", "unbekannter empfänger", "destinataire inconnu",
		"user unknown", "unknown user", "no such user", "user not found", "mailbox not found",
		"user does not exist", "mailbox does not exist", "recipient does not exist",
		"user doesn't exist", "mailbox doesn't exist", "no mailbox", "invalid recipient", "recipient unknown",
		"unknown recipient", "no such mailbox", "not a valid mailbox", "invalid mailbox",
		"addressee unknown", "recipient not found", "no such recipient", "user doesn't have",
		"unknown address", "bad destination mailbox", "not our customer", "unknown local part",
		"no valid recipients", "invalid address", "user is unknown",
		"no such account", "account does not exist", "unknown or illegal alias",
		"address does not exist", "destinataire invalide", "does not like recipient", "not listed in public name",
		"unknown email address", "no account by that name", "mailbox unavailable",
		"inactive email address", "name is not recognized", "recipient address rejected: access denied",
		"address couldn't be found", "check if address is correct", "address not found", "doesn't have a", "user invalid",
	},
	ReasonFiltered: {
		"user reject", "refuses to receive", "is not accepting any mail", "only accepting mail from", "blocked by the recipient", "rejected due to user rules", " : user unknown", "email preferences", "recipient preferences", "refused due to recipient", "message filtered", "has restricted"},
	ReasonRequirePTR: {
		"reverse dns", "no ptr", "ptr record", "reverse lookup", "rdns",
		"cannot find your hostname", "client host rejected: cannot find",
		"not have reverse", "reverse address", "unverifyable sending ip",
		"ip name lookup failed", "mismatches client ip", "cannot resolve your",
	},
	ReasonNotCompliantRFC: {"not rfc 5322 compliant", "not rfc 5322", "rfc 5322 compliant", "multiple subject", "duplicate header"},
	ReasonBadReputation:   {"low reputation", "poor reputation", "reputation of the sending", "user complaints", "bad reputation"},
	ReasonContentError: {
		"too many \"received\" headers", "media error", "content error", "header error"},
	ReasonRejected: {
		"envelope sender", "mail from address", "from/to an address that has been", "sender address is", "sender is not allowed",
		"sender address rejected", "domain of sender address", "sender rejected",
		"unroutable sender", "sender domain", "invalid sender", "sender verify failed",
		"sender not allowed", "rejected sender", "not accept mail from", "permission to post", "valid from:",
	},
	ReasonHostUnknown: {
		"all host address lookups failed permanently", "mx records point to non-existent hosts",
		"couldn't find any host",
		"nxdomain", "no such host",
		"host unknown", "unknown host", "domain not found", "host not found", "no such domain",
		"domain does not exist", "name or service not known", "unrouteable mail domain",
		"domain name not found", "host or domain name not found", "unknown domain",
		"invalid domain", "bad destination system address", "unrouteable address",
		"domain is not reachable", "domain may not exist",
	},
	ReasonVirusDetected: {"virus", "infected", "malware", "mcspamsignature"},
	ReasonSpamDetected: {
		"rejected as spam", "detected as spam", "blocked for spam", "spam rejected",
		"as spam", "spam detected", "spam message", "is spam", "spam content", "spam score",
		"spamassassin", "likely spam", "spam filter", "considered spam", "looks like spam",
		"spam policy", "junk mail", "unsolicited", "bulk mail", "message content rejected",
		"content filter", "blacklisted url", "mail rejete",
	},
	ReasonSpeeding: {"rate limit", "sending rate", "throttl", "too many messages", "please slow down"},
	ReasonTooManyConn: {
		"too many recipients", "too many connections", "connection limit", "too many concurrent",
		"connection rate limit", "frequency limited", "too many sessions",
	},
	ReasonBlocked: {
		"dnsbl", "spamcop", "sorbs", "your ip", "sender ip", "ip address is", "unwanted messages", "blocked using", "on our block",
		"blocked", "blacklist", "blocklist", "block list", "black list", "listed",
		"banned", "rbl", "spamhaus", "client host rejected", "service not available",
		"messages from", "(bl)", "access denied", "connection refused by", "550 rejected",
		"protocol error", "refused to talk to me",
	},
	ReasonExpired: {
		"retry timeout exceeded", "have been failing for a long time",
		"retry time not reached", "message timed out", "queue expired", "delivery period expired",
		"retry timeout", "retry time", "could not be delivered for", "will continue trying",
		"was not delivered within", "delivery time expired", "timeout exceeded",
		"undeliverable for", "queue too long", "delivery expired", "timed out",
		"has not been delivered", "giving up", "too long in the queue", "been in the queue too long",
		"delivery attempts will continue", "host not reachable", "could not be delivered within",
		"did not accept our requests to connect", "was aborted after",
	},
	ReasonNetworkError: {
		"wasn't able to establish an smtp connection",
		"connection refused", "no route to host", "network is unreachable", "could not connect",
		"unable to connect", "lost connection", "connection reset", "mail loop", "loops back",
		"too many hops", "hop count exceeded", "routing loop", "dns error", "dns query failed",
		"dns type", "dns lookup", "network error", "name service error",
	},
	ReasonPolicyViolation: {
		"policy reasons", "policy violation", "protocol violation", "message not allowed",
		"denied by policy", "violates our policy", "content presents a potential",
	},
	ReasonSecurityError: {"delivery not authorized", "smtp authentication", "unauthenticated", "must issue a starttls", "tls required", "encryption required"},
	ReasonSystemError: {
		"delivery to file forbidden", "delivery to pipe forbidden", "local delivery failed",
		"unable to contact ldap", "failure in ldap lookup",
		"system error", "local error", "internal error", "server error", "service currently unavailable",
		"transaction failed", "duplicated message-id", "service refuse", "temporary failure",
	},
	ReasonSystemFull:  {"system full", "insufficient system storage", "out of disk"},
	ReasonMailerError: {"mailer error", "command failed", "exit code", "procmail", "unknown mailer", "command died", "x-unix"},
	ReasonSyntaxError: {
		"malformed address", "angle-brackets nested too deep", "syntax error", "command unrecognized", "bad sequence", "improper sequence"},
	ReasonOnHold: {"on hold"},
	ReasonNotAccept: {
		"indicated no smtp service", "couldn't find a mail exchanger or ip address", "null mx", "does not accept mail", "accepts no mail", "no mx record", "no mx found"},
}

// matchReason reports whether lower-case text states the reason.
func matchReason(reason, text string) bool {
	if text == "" {
		return false
	}
	for _, p := range reasonPhrases[reason] {
		if strings.Contains(text, p) {
			return true
		}
	}
	return false
}

// firstPhrase returns the first phrase of reason that lower-case text
// contains, or "".
func firstPhrase(reason, text string) string {
	for _, p := range reasonPhrases[reason] {
		if strings.Contains(text, p) {
			return p
		}
	}
	return ""
}

// reasonBit numbers the reasons of reasonPhrases for textMatcher.
var reasonBit = func() map[string]uint {
	m := map[string]uint{}
	for r := range reasonPhrases {
		m[r] = uint(len(m))
	}
	return m
}()

// textMatcher answers matchReason for one text, testing each reason's
// phrases at most once.
type textMatcher struct {
	text        string
	known, hits uint64
}

// has reports whether the text states reason.
func (t *textMatcher) has(reason string) bool {
	bit, ok := reasonBit[reason]
	if !ok {
		return false
	}
	mask := uint64(1) << bit
	if t.known&mask == 0 {
		t.known |= mask
		if matchReason(reason, t.text) {
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
