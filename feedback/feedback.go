package feedback

import (
	"errors"
	"time"
)

// Event kinds.
const (
	// KindBounce: the provider gave up on the recipient (it will not
	// retry this message).
	KindBounce = "bounce"
	// KindComplaint: the recipient reported the message as spam.
	KindComplaint = "complaint"
	// KindDelivery: the recipient's server accepted the message.
	KindDelivery = "delivery"
	// KindDelay: the recipient's server refused the message for now and
	// the provider is still trying (Mailgun's temporary failure,
	// SendGrid's deferred, SES's DeliveryDelay, Postmark's Transient):
	// like a DSN with Action delayed, it is recorded and changes nothing,
	// since the message may yet be delivered, bounce or draw a complaint.
	KindDelay = "delay"
)

// Providers whose notifications are understood.
const (
	ProviderSES      = "ses"
	ProviderSendGrid = "sendgrid"
	ProviderMailgun  = "mailgun"
	ProviderPostmark = "postmark"
)

// Providers lists every provider name, in a stable order.
var Providers = []string{ProviderSES, ProviderSendGrid, ProviderMailgun, ProviderPostmark}

// Event is what a notification says about one recipient of one message.
type Event struct {
	// ID identifies the event at the provider (the SNS MessageId with the
	// recipient, sg_event_id, Mailgun's event id with the event's
	// timestamp, Postmark's ID): a second
	// notification with the same ID is a duplicate.
	ID string
	// Kind is KindBounce, KindComplaint, KindDelivery or KindDelay.
	Kind string
	// Recipient is the address the event is about.
	Recipient string
	// Severity is the provider's own verdict on a bounce (a delay is
	// SeverityTemporary):
	// SeverityPermanent (it stopped trying and holds the address bad),
	// SeverityTemporary, or "" when it gives none. The caller takes it as
	// authoritative for hard or soft; the reason comes from Status and
	// Diagnostic.
	Severity string
	// Status is the RFC 3463 enhanced status code when the provider gives
	// one, e.g. 5.1.1, else ""; Diagnostic the remote server's answer as
	// the provider reports it (with its SMTP reply code when the provider
	// gives that apart).
	Status     string
	Diagnostic string
	// Cause is the cause of a bounce as the provider names it, in package
	// bounce's reason vocabulary (userunknown, mailboxfull, mesgtoobig,
	// contenterror, blocked, spamdetected, virusdetected, authfailure,
	// networkerror), or "" when it names none: SES's bounceSubType,
	// Postmark's bounce type. It is the documented fallback for a bounce
	// whose Status and Diagnostic explain nothing (SES reports an address
	// on its suppression list with neither); the caller classifies those
	// first.
	Cause string
	// FeedbackType is the complaint's type (abuse, …) when known.
	FeedbackType string
	// MailgateID is the message's X-Mailgate-ID when the provider echoes
	// it (header, custom argument or metadata); MessageID the Message-ID
	// header it echoes. Either ties the event to our message.
	MailgateID string
	MessageID  string
	// At is when the provider says the event happened.
	At time.Time
}

// Bounce severities (Event.Severity).
const (
	SeverityPermanent = "permanent"
	SeverityTemporary = "temporary"
)

// Notification is one verified request from a provider.
type Notification struct {
	// Events are the per-recipient events it carries (none for an SNS
	// subscription confirmation or an event kind mailgate ignores).
	Events []Event
	// SubscribeURL is set for an SNS SubscriptionConfirmation: visiting it
	// confirms the subscription.
	SubscribeURL string
	// Token is the one-time token claimed to accept it (Mailgun), or "":
	// the caller releases it (TokenClaimer.Release) when it cannot take
	// the events after all.
	Token string
}

// Reasons a notification is refused; each is a label value of the refused
// counter of the caller.
var (
	// ErrUnauthenticated: credentials or signature missing.
	ErrUnauthenticated = errors.New("feedback: unauthenticated")
	// ErrForged: the signature or credentials do not verify.
	ErrForged = errors.New("feedback: signature does not verify")
	// ErrStale: the notification's timestamp is outside the accepted window.
	ErrStale = errors.New("feedback: timestamp outside the accepted window")
	// ErrReplayed: the notification's one-time token was already used.
	ErrReplayed = errors.New("feedback: token already used")
	// ErrMalformed: the body is not the provider's documented shape.
	ErrMalformed = errors.New("feedback: malformed notification")
	// ErrCertificate: the SNS signing certificate URL is not an SNS host
	// or the certificate cannot be fetched or read.
	ErrCertificate = errors.New("feedback: signing certificate refused")
	// ErrCertUnavailable: the SNS signing certificate could not be
	// fetched; the notification may verify later.
	ErrCertUnavailable = errors.New("feedback: signing certificate unavailable")
	// ErrTopic: the SNS topic is not the one configured.
	ErrTopic = errors.New("feedback: topic not configured")
)

// Reason is the short label of a refusal error: unauthenticated, forged,
// stale, replayed, malformed, certificate, certificate_unavailable, topic,
// or other.
func Reason(err error) string {
	for _, r := range []struct {
		err   error
		label string
	}{{ErrUnauthenticated, "unauthenticated"}, {ErrForged, "forged"}, {ErrStale, "stale"},
		{ErrReplayed, "replayed"}, {ErrMalformed, "malformed"}, {ErrCertificate, "certificate"},
		{ErrCertUnavailable, "certificate_unavailable"}, {ErrTopic, "topic"}} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// DefaultMaxAge is how old a signed timestamp may be (and how far in the
// future) when a Config leaves MaxAge zero: providers retry for longer, but
// a retry carries a fresh signature (SendGrid, Mailgun) or the original
// one (SNS, whose timestamp is the first attempt's), so one hour covers
// SNS's immediate retries while bounding replays.
const DefaultMaxAge = time.Hour

// fresh reports whether at is within maxAge of now either way.
func fresh(now, at time.Time, maxAge time.Duration) bool {
	d := now.Sub(at)
	return d <= maxAge && d >= -maxAge
}

// SealAAD is the additional data a feedback endpoint's secret is sealed
// with (package keyring): it binds the sealed secret to the endpoint.
func SealAAD(endpointID string) []byte { return []byte("mailgate feedback secret\x00" + endpointID) }
