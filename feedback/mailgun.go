package feedback

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TokenClaimer remembers one-time tokens: Claim reports whether token is
// new, remembering it for at least ttl. Every process receiving a
// provider's notifications must share one memory (the API's is Redis),
// else a replay to another process passes; an error means the memory could
// not answer, and the notification must be refused for now, never taken
// unchecked. Release forgets a claimed token whose notification was not
// taken after all (its events could not be stored), so that the
// provider's retry, carrying the same token, is not refused as a replay.
type TokenClaimer interface {
	Claim(ctx context.Context, token string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, token string) error
}

// Mailgun verifies Mailgun webhooks: the body's signature object holds a
// timestamp, a random token and the hex HMAC-SHA256 of timestamp+token
// keyed with the webhook signing key. A token is accepted once.
type Mailgun struct {
	// SigningKey is the account's HTTP webhook signing key.
	SigningKey string
	// Tokens remembers used tokens; required.
	Tokens TokenClaimer
	// Scope names whose tokens these are (the receiving project): a token
	// is remembered per scope, so one project's endpoint cannot use up a
	// token another project's notification carries.
	Scope string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxAge bounds the timestamp; default DefaultMaxAge. Tokens are
	// remembered for twice as long from their use (a timestamp may be
	// MaxAge ahead), so a replay is refused as stale or as replayed.
	MaxAge time.Duration
}

// mailgunBody is a Mailgun webhook body.
type mailgunBody struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData struct {
		ID             string  `json:"id"`
		Event          string  `json:"event"`
		Severity       string  `json:"severity"`
		Reason         string  `json:"reason"`
		Recipient      string  `json:"recipient"`
		Timestamp      float64 `json:"timestamp"`
		DeliveryStatus struct {
			Code         int    `json:"code"`
			EnhancedCode string `json:"enhanced-code"`
			Message      string `json:"message"`
			Description  string `json:"description"`
		} `json:"delivery-status"`
		Message struct {
			Headers struct {
				MessageID string `json:"message-id"`
			} `json:"headers"`
		} `json:"message"`
		UserVariables map[string]any `json:"user-variables"`
	} `json:"event-data"`
}

// Verify checks the signature object of body and reads its event.
func (v *Mailgun) Verify(ctx context.Context, body []byte) (Notification, error) {
	var b mailgunBody
	if err := json.Unmarshal(body, &b); err != nil {
		return Notification{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	s := b.Signature
	if s.Signature == "" || s.Token == "" || s.Timestamp == "" {
		return Notification{}, ErrUnauthenticated
	}
	mac := hmac.New(sha256.New, []byte(v.SigningKey))
	mac.Write([]byte(s.Timestamp + s.Token))
	got, err := hex.DecodeString(s.Signature)
	if err != nil || v.SigningKey == "" || !hmac.Equal(got, mac.Sum(nil)) {
		return Notification{}, ErrForged
	}
	secs, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil {
		return Notification{}, fmt.Errorf("%w: timestamp", ErrMalformed)
	}
	if !fresh(nowOr(v.Now), time.Unix(secs, 0), maxAgeOr(v.MaxAge)) {
		return Notification{}, ErrStale
	}
	if v.Tokens == nil {
		return Notification{}, fmt.Errorf("feedback: mailgun: no token store")
	}
	token := "mailgun:" + v.Scope + ":" + s.Token
	ok, err := v.Tokens.Claim(ctx, token, 2*maxAgeOr(v.MaxAge))
	if err != nil {
		return Notification{}, fmt.Errorf("feedback: mailgun token: %w", err)
	}
	if !ok {
		return Notification{}, ErrReplayed
	}
	return Notification{Events: parseMailgun(b), Token: token}, nil
}

// mailgunSeverity is the verdict of a failed event's severity.
var mailgunSeverity = map[string]string{"permanent": SeverityPermanent, "temporary": SeverityTemporary}

// parseMailgun reads failed, complained and delivered events; others are
// ignored. A failure's delivery-status is the remote server's answer:
// its SMTP reply code, enhanced code (when Mailgun read one) and text. A
// temporary failure is a delay, not a bounce: Mailgun documents it as
// temporarily rejected and keeps retrying, and reports the outcome
// (delivered, or a permanent failure) as an event of its own.
func parseMailgun(b mailgunBody) []Event {
	d := b.EventData
	// Mailgun's event ids are unique within a day only, and an event is
	// remembered for good (package inbound): the event's own timestamp,
	// as Mailgun wrote it, makes the key unique for good.
	id := d.ID
	if id != "" {
		id += "@" + strconv.FormatFloat(d.Timestamp, 'f', -1, 64)
	}
	e := Event{ID: id, Recipient: d.Recipient, MessageID: d.Message.Headers.MessageID,
		At: time.Unix(int64(d.Timestamp), 0).UTC()}
	if id, ok := d.UserVariables["mailgate_id"].(string); ok {
		e.MailgateID = id
	}
	switch d.Event {
	case "failed":
		ds := d.DeliveryStatus
		e.Kind, e.Severity, e.Status = KindBounce, mailgunSeverity[d.Severity], ds.EnhancedCode
		switch {
		case e.Severity == SeverityTemporary:
			e.Kind = KindDelay
		case d.Reason == "old":
			// Mailgun stopped retrying after temporary failures: its
			// "permanent" says it gave up, not that the address is bad, so
			// the rules read the last answer (a full mailbox stays soft).
			e.Severity = ""
		}
		e.Diagnostic = strings.TrimSpace(ds.Message + " " + ds.Description)
		if ds.Code >= 200 && ds.Code < 600 { // an SMTP reply code; Mailgun's own (605, …) are not
			e.Diagnostic = strings.TrimSpace(strconv.Itoa(ds.Code) + " " + e.Diagnostic)
		}
	case "complained":
		e.Kind, e.FeedbackType = KindComplaint, "abuse"
	case "delivered":
		e.Kind = KindDelivery
	default:
		return nil
	}
	return []Event{e}
}
