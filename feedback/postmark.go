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
	MessageID   string            `json:"MessageID"`
	Email       string            `json:"Email"`
	Recipient   string            `json:"Recipient"`
	Description string            `json:"Description"`
	Details     string            `json:"Details"`
	BouncedAt   time.Time         `json:"BouncedAt"`
	DeliveredAt time.Time         `json:"DeliveredAt"`
	Metadata    map[string]string `json:"Metadata"`
}

// postmarkHard lists Postmark's bounce types that mean the address is bad;
// every other type (SoftBounce, Transient, DnsError, …) is soft.
var postmarkHard = map[string]bool{"HardBounce": true, "BadEmailAddress": true, "ManuallyDeactivated": true}

// parsePostmark reads Bounce, SpamComplaint and Delivery records. Postmark's
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
		e.Kind, e.Hard, e.Diagnostic = KindBounce, postmarkHard[p.Type], p.Details
		e.Status = "4.0.0"
		if e.Hard {
			e.Status = "5.0.0"
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
