package feedback

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// SendGrid header names of the signed event webhook.
const (
	SendGridSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
	SendGridTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// SendGrid verifies SendGrid's signed event webhook: an ECDSA P-256
// signature (ASN.1 DER, base64) over SHA-256 of the timestamp header
// followed by the raw body, checked with the public key SendGrid shows
// when signing is enabled (base64 DER SubjectPublicKeyInfo).
type SendGrid struct {
	// PublicKey is the verification key as SendGrid shows it.
	PublicKey string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxAge bounds the timestamp; default DefaultMaxAge.
	MaxAge time.Duration
}

// ParseSendGridKey reads a SendGrid verification key: base64 of a DER
// SubjectPublicKeyInfo holding an ECDSA P-256 key.
func ParseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("sendgrid key: %w", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("sendgrid key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("sendgrid key: not an ECDSA P-256 key")
	}
	return pub, nil
}

// Verify checks the signature headers over body and reads its events.
func (v *SendGrid) Verify(signature, timestamp string, body []byte) (Notification, error) {
	if signature == "" || timestamp == "" {
		return Notification{}, ErrUnauthenticated
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return Notification{}, fmt.Errorf("%w: timestamp", ErrMalformed)
	}
	if !fresh(nowOr(v.Now), time.Unix(secs, 0), maxAgeOr(v.MaxAge)) {
		return Notification{}, ErrStale
	}
	pub, err := ParseSendGridKey(v.PublicKey)
	if err != nil {
		return Notification{}, err
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return Notification{}, ErrForged
	}
	d := sha256.Sum256(append([]byte(timestamp), body...))
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		return Notification{}, ErrForged
	}
	evs, err := parseSendGrid(body)
	return Notification{Events: evs}, err
}

// sendGridEvent is one element of the event webhook's JSON array. Custom
// arguments (unique args) appear as top-level fields: mailgate_id is the
// one mailgate's relay sets.
type sendGridEvent struct {
	Email      string `json:"email"`
	Timestamp  int64  `json:"timestamp"`
	Event      string `json:"event"`
	EventID    string `json:"sg_event_id"`
	SMTPID     string `json:"smtp-id"`
	Type       string `json:"type"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	Response   string `json:"response"`
	MailgateID string `json:"mailgate_id"`
}

// sendGridSeverity is the verdict of a bounce event's type: bounce
// (SendGrid adds the address to its bounce list), blocked (a temporary
// refusal); an event without a type gives none.
var sendGridSeverity = map[string]string{"bounce": SeverityPermanent, "blocked": SeverityTemporary}

// parseSendGrid reads bounce, spamreport, delivered and deferred events;
// other events are ignored. A deferred event (the recipient's server
// refused the message for now; SendGrid retries) is a delay, its
// response the server's answer. A bounce of type blocked stays a bounce:
// it ends SendGrid's attempts at the message.
func parseSendGrid(body []byte) ([]Event, error) {
	var in []sendGridEvent
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var out []Event
	for _, s := range in {
		e := Event{ID: s.EventID, Recipient: s.Email, MailgateID: s.MailgateID, MessageID: s.SMTPID,
			At: time.Unix(s.Timestamp, 0).UTC()}
		switch s.Event {
		case "bounce":
			e.Kind, e.Status, e.Diagnostic = KindBounce, s.Status, s.Reason
			e.Severity = sendGridSeverity[s.Type]
		case "spamreport":
			e.Kind, e.FeedbackType = KindComplaint, "abuse"
		case "delivered":
			e.Kind = KindDelivery
		case "deferred":
			e.Kind, e.Severity, e.Diagnostic = KindDelay, SeverityTemporary, s.Response
		default:
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func nowOr(now func() time.Time) time.Time {
	if now == nil {
		return time.Now()
	}
	return now()
}

func maxAgeOr(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultMaxAge
	}
	return d
}
