package feedback

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"time"
)

// Postmark verifies Postmark webhooks, which carry no signature: the
// webhook URL holds HTTP basic credentials (RFC 7617) that only Postmark
// and mailgate know, on a per-project secret URL.
type Postmark struct {
	// Username and Password are the credentials configured in Postmark's
	// webhook URL.
	Username, Password string
}

// Verify checks the basic credentials the request carried (ok false when
// it carried none) and reads body.
func (v *Postmark) Verify(user, pass string, ok bool, body []byte) (Notification, error) {
	if !ok {
		return Notification{}, ErrUnauthenticated
	}
	if v.Password == "" || subtle.ConstantTimeCompare([]byte(user), []byte(v.Username)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(v.Password)) != 1 {
		return Notification{}, ErrForged
	}
	evs, err := parsePostmark(body)
	return Notification{Events: evs}, err
}

// postmarkBody is a Postmark bounce, spam complaint or delivery webhook.
type postmarkBody struct {
	RecordType  string            `json:"RecordType"`
	ID          json.Number       `json:"ID"`
	Type        string            `json:"Type"`
	TypeCode    int               `json:"TypeCode"`
	MessageID   string            `json:"MessageID"`
	Email       string            `json:"Email"`
	Recipient   string            `json:"Recipient"`
	Description string            `json:"Description"`
	Details     string            `json:"Details"`
	BouncedAt   time.Time         `json:"BouncedAt"`
	DeliveredAt time.Time         `json:"DeliveredAt"`
	Metadata    map[string]string `json:"Metadata"`
}

// postmarkSeverity is the verdict of the bounce types of Postmark's API
// reference that report a failed delivery: those after which Postmark
// deactivates the address are permanent, the others temporary (of which
// Transient, "message delayed", is a delay, not a bounce). Unknown
// gives none. A type missing here (Subscribe, Unsubscribe, AutoResponder,
// AddressChange, OpenRelayTest, ChallengeVerification, Unconfirmed,
// SMTPApiError, InboundError, TemplateRenderingFailed, …) reports no
// failed delivery, and the record is ignored.
var postmarkSeverity = map[string]string{
	"HardBounce": SeverityPermanent, "BadEmailAddress": SeverityPermanent, "ManuallyDeactivated": SeverityPermanent,
	"SoftBounce": SeverityTemporary, "Transient": SeverityTemporary, "DnsError": SeverityTemporary,
	"Blocked": SeverityTemporary, "SpamNotification": SeverityTemporary, "VirusNotification": SeverityTemporary,
	"DMARCPolicy": SeverityTemporary, "Unknown": "",
}

// postmarkTypeCodes names the TypeCode of each bounce type in Postmark's
// API reference, for a record that gives the code without the name.
var postmarkTypeCodes = map[int]string{
	1: "HardBounce", 2: "Transient", 16: "Unsubscribe", 32: "Subscribe", 64: "AutoResponder",
	128: "AddressChange", 256: "DnsError", 512: "SpamNotification", 1024: "OpenRelayTest",
	2048: "Unknown", 4096: "SoftBounce", 8192: "VirusNotification", 16384: "ChallengeVerification",
	100000: "BadEmailAddress", 100001: "SpamComplaint", 100002: "ManuallyDeactivated",
	100003: "Unconfirmed", 100006: "Blocked", 100007: "SMTPApiError", 100008: "InboundError",
	100009: "DMARCPolicy", 100010: "TemplateRenderingFailed",
}

// postmarkCause is the cause (Event.Cause) of the bounce types whose
// description in Postmark's API reference names one: BadEmailAddress
// "invalid email address", DnsError "a temporary DNS error", Blocked "ISP
// block", SpamNotification, VirusNotification, DMARCPolicy. HardBounce is
// Postmark's type for any permanent failure (its examples, unknown user
// and mailbox not found, are two of many), and SoftBounce, Transient,
// Unknown and ManuallyDeactivated name none either.
var postmarkCause = map[string]string{
	"BadEmailAddress": "userunknown", "DnsError": "networkerror",
	"Blocked": "blocked", "SpamNotification": "spamdetected", "VirusNotification": "virusdetected",
	"DMARCPolicy": "authfailure",
}

// parsePostmark reads Bounce (of a type in postmarkSeverity, named by
// Type, else by TypeCode; Transient as a delay),
// SpamComplaint and Delivery records. Postmark's
// MessageID is its own, so the message is named by the mailgate_id
// metadata (X-PM-Metadata-mailgate_id).
func parsePostmark(body []byte) ([]Event, error) {
	var p postmarkBody
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	e := Event{ID: p.RecordType + "/" + p.ID.String(), Recipient: p.Email, MailgateID: p.Metadata["mailgate_id"],
		At: p.BouncedAt}
	switch p.RecordType {
	case "Bounce":
		if p.Type == "" {
			p.Type = postmarkTypeCodes[p.TypeCode]
		}
		severity, failed := postmarkSeverity[p.Type]
		if !failed {
			return nil, nil
		}
		// Details is the remote server's answer; Description is Postmark's
		// fixed text for the type, which names no cause of this bounce.
		e.Kind, e.Severity, e.Diagnostic, e.Cause = KindBounce, severity, p.Details, postmarkCause[p.Type]
		if p.Type == "Transient" {
			// "Message delayed": the message may yet be delivered.
			e.Kind = KindDelay
		}
	case "SpamComplaint":
		e.Kind, e.FeedbackType = KindComplaint, "abuse"
	case "Delivery":
		e.Kind, e.Recipient, e.At, e.Diagnostic = KindDelivery, p.Recipient, p.DeliveredAt, p.Details
		e.ID = p.RecordType + "/" + p.MessageID + "/" + p.Recipient
	default:
		return nil, nil
	}
	if p.ID == "" && p.RecordType != "Delivery" {
		return nil, fmt.Errorf("%w: ID", ErrMalformed)
	}
	return []Event{e}, nil
}
