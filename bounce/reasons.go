package bounce

// Reasons: why a delivery failed (or what a report is), in Sisimai's
// vocabulary (v5.1 names) so that results compare with that widely used
// classifier. Only ReasonUserUnknown, ReasonHostUnknown, ReasonHasMoved and
// a permanent ReasonNotAccept are hard (see IsHard).
const (
	// ReasonUserUnknown: the mailbox does not exist (RFC 3463 X.1.1).
	ReasonUserUnknown = "userunknown"
	// ReasonMailboxFull: the mailbox is over quota (X.2.2).
	ReasonMailboxFull = "mailboxfull"
	// ReasonHostUnknown: the domain does not exist or has no MX (X.1.2).
	ReasonHostUnknown = "hostunknown"
	// ReasonFiltered: the recipient's own filter refused the message.
	ReasonFiltered = "filtered"
	// ReasonRejected: the sender address was refused (X.1.7, X.1.8).
	ReasonRejected = "rejected"
	// ReasonBlocked: the sending IP or host was refused (blocklist, no
	// reverse DNS match).
	ReasonBlocked = "blocked"
	// ReasonSpamDetected: the content was judged spam.
	ReasonSpamDetected = "spamdetected"
	// ReasonVirusDetected: the content carried a virus.
	ReasonVirusDetected = "virusdetected"
	// ReasonExpired: the message stayed queued too long (X.4.7).
	ReasonExpired = "expired"
	// ReasonSuspend: the mailbox is disabled or suspended (X.2.1).
	ReasonSuspend = "suspend"
	// ReasonTooManyConn: too many connections or messages at once (rate
	// limited by connection count).
	ReasonTooManyConn = "toomanyconn"
	// ReasonSpeeding: sending too fast (rate limited).
	ReasonSpeeding = "speeding"
	// ReasonPolicyViolation: a local policy refused the message.
	ReasonPolicyViolation = "policyviolation"
	// ReasonSecurityError: a security requirement failed (TLS, auth).
	ReasonSecurityError = "securityerror"
	// ReasonAuthFailure: SPF, DKIM or DMARC failed (X.7.23–X.7.27).
	ReasonAuthFailure = "authfailure"
	// ReasonRequirePTR: the sending IP has no (matching) reverse DNS
	// (X.7.25).
	ReasonRequirePTR = "requireptr"
	// ReasonBadReputation: the sender's reputation is too low.
	ReasonBadReputation = "badreputation"
	// ReasonNoRelaying: the server refused to relay (X.7.1 relay denied).
	ReasonNoRelaying = "norelaying"
	// ReasonNotAccept: the destination accepts no mail (null MX, RFC
	// 7505; X.1.10, X.7.27).
	ReasonNotAccept = "notaccept"
	// ReasonNotCompliantRFC: the message violates RFC 5322.
	ReasonNotCompliantRFC = "notcompliantrfc"
	// ReasonContentError: the content was refused (bad MIME, X.6.x).
	ReasonContentError = "contenterror"
	// ReasonSyntaxError: an SMTP command syntax error (X.5.x, 5xx 50x).
	ReasonSyntaxError = "syntaxerror"
	// ReasonSystemError: the remote system failed (X.3.x).
	ReasonSystemError = "systemerror"
	// ReasonSystemFull: the remote system is out of disk space (X.3.1).
	ReasonSystemFull = "systemfull"
	// ReasonNetworkError: DNS or connection failure, or a mail loop (X.4.x;
	// "too many hops", X.4.6).
	ReasonNetworkError = "networkerror"
	// ReasonMailerError: a local delivery program failed.
	ReasonMailerError = "mailererror"
	// ReasonMesgTooBig: the message is too large (X.3.4, X.2.3).
	ReasonMesgTooBig = "mesgtoobig"
	// ReasonExceedLimit: the message exceeds a recipient's size limit or
	// another per-recipient limit.
	ReasonExceedLimit = "exceedlimit"
	// ReasonHasMoved: the recipient has moved and left no forwarding
	// (X.1.6).
	ReasonHasMoved = "hasmoved"
	// ReasonOnHold: a bounce whose cause cannot be told yet.
	ReasonOnHold = "onhold"
	// ReasonUndefined: a bounce whose cause is unknown.
	ReasonUndefined = "undefined"
	// ReasonDelivered: a success DSN.
	ReasonDelivered = "delivered"
	// ReasonFeedback: an ARF complaint.
	ReasonFeedback = "feedback"
	// ReasonVacation: an auto-reply.
	ReasonVacation = "vacation"
)

// IsHard reports whether a failure with this reason and status means the
// address itself is bad: unknown user, unknown host, moved, or a permanent
// (5.x.x) "accepts no mail". Every other failure is soft, even when
// permanent.
func IsHard(reason, status string) bool {
	switch reason {
	case ReasonUserUnknown, ReasonHostUnknown, ReasonHasMoved:
		return true
	case ReasonNotAccept:
		return statusClass(status) == '5'
	}
	return false
}

// primaryOrder is the order in which reasons are tried against the status
// code and the diagnostic together: the more specific first.
var primaryOrder = []string{
	ReasonMailboxFull, ReasonMesgTooBig, ReasonExceedLimit, ReasonSuspend, ReasonHasMoved,
	ReasonNoRelaying, ReasonAuthFailure, ReasonUserUnknown, ReasonFiltered, ReasonRequirePTR,
	ReasonNotCompliantRFC, ReasonBadReputation, ReasonContentError, ReasonRejected,
	ReasonHostUnknown, ReasonVirusDetected, ReasonSpamDetected,
	ReasonPolicyViolation, ReasonTooManyConn, ReasonSpeeding, ReasonBlocked,
}

// secondaryOrder is tried, by text only, when neither the primary reasons
// nor the status code decided.
var secondaryOrder = []string{
	ReasonExpired, ReasonNetworkError, ReasonNotAccept, ReasonOnHold, ReasonSystemFull,
	ReasonSystemError, ReasonSecurityError, ReasonMailerError, ReasonSyntaxError,
}
