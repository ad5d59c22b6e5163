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
	// ReasonSystemError: the remote system failed (X.3.x, loops).
	ReasonSystemError = "systemerror"
	// ReasonSystemFull: the remote system is out of disk space (X.3.1).
	ReasonSystemFull = "systemfull"
	// ReasonNetworkError: DNS or connection failure (X.4.x).
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

// reasonFromStatus maps an RFC 3463 status code to a reason; "" when the
// code says too little (X.0.0, unknown subjects). Temporary (4.x.x) codes
// map differently where the same condition means something else when it
// is expected to pass (4.2.1: refused for now, not a disabled mailbox).
func reasonFromStatus(status string) string {
	if len(status) < 5 {
		return ""
	}
	detail := status[2:]
	if status[0] == '4' {
		if r, ok := transientReasons[detail]; ok {
			return r
		}
	} else if r, ok := permanentReasons[detail]; ok {
		return r
	}
	return statusReasons[detail]
}

// statusReasons maps "subject.detail" (RFC 3463 §3 and the IANA registry of
// enhanced status codes) to reasons, for both classes.
var statusReasons = map[string]string{
	"1.6": ReasonHasMoved, "1.7": ReasonRejected, "1.8": ReasonRejected, "1.9": ReasonSystemError,
	"2.2": ReasonMailboxFull, "2.3": ReasonExceedLimit, "2.4": ReasonFiltered,
	"3.1": ReasonSystemFull, "3.2": ReasonNotAccept, "3.3": ReasonSystemError, "3.5": ReasonSystemError,
	"4.2": ReasonNetworkError, "4.3": ReasonSystemError, "4.5": ReasonSystemFull,
	"4.6": ReasonNetworkError, "4.7": ReasonExpired,
	"5.5": ReasonSystemError,
	"6.0": ReasonContentError, "6.1": ReasonContentError, "6.2": ReasonContentError,
	"6.3": ReasonContentError, "6.5": ReasonContentError, "6.6": ReasonContentError,
	"6.7": ReasonContentError, "6.8": ReasonContentError, "6.9": ReasonContentError,
	"7.5": ReasonSecurityError, "7.6": ReasonSecurityError, "7.7": ReasonSecurityError,
	"7.15": ReasonSecurityError, "7.16": ReasonMesgTooBig,
	"7.24": ReasonAuthFailure, "7.25": ReasonRequirePTR, "7.26": ReasonAuthFailure,
}

// permanentReasons are the 5.x.x meanings that differ from statusReasons.
var permanentReasons = map[string]string{
	"1.1": ReasonUserUnknown, "1.2": ReasonHostUnknown,
	"1.3": ReasonUserUnknown, "1.4": ReasonFiltered, "1.10": ReasonNotAccept,
	"2.0": ReasonFiltered, "2.1": ReasonFiltered,
	"3.0": ReasonSystemError, "3.4": ReasonMesgTooBig,
	"4.0": ReasonNetworkError, "4.4": ReasonHostUnknown,
	"5.2": ReasonSyntaxError, "5.3": ReasonTooManyConn, "5.4": ReasonSystemError, "5.6": ReasonSyntaxError,
	"7.0": ReasonSecurityError, "7.1": ReasonSecurityError, "7.2": ReasonSecurityError,
	"7.3": ReasonSecurityError, "7.4": ReasonSecurityError, "7.8": ReasonSecurityError,
	"7.9": ReasonSecurityError, "7.10": ReasonSecurityError, "7.11": ReasonSecurityError,
	"7.13": ReasonSuspend, "7.14": ReasonSecurityError, "7.17": ReasonHasMoved,
	"7.18": ReasonHasMoved, "7.19": ReasonSecurityError, "7.20": ReasonAuthFailure,
	"7.21": ReasonAuthFailure, "7.22": ReasonAuthFailure, "7.23": ReasonAuthFailure,
	"7.27": ReasonNotAccept, "7.28": ReasonSpamDetected, "7.29": ReasonAuthFailure,
}

// transientReasons are the 4.x.x meanings that differ from statusReasons.
var transientReasons = map[string]string{
	"2.1": ReasonBlocked, "4.1": ReasonExpired, "4.4": ReasonNetworkError, "4.8": ReasonNetworkError,
	"5.3": ReasonSystemError, "7.1": ReasonBlocked, "7.2": ReasonBlocked, "7.12": ReasonSecurityError,
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
