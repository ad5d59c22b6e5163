package worker

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// outcomeOf maps one SMTP transaction's result to the recipient's new
// status and event: 2xx sent; 4xx, network errors, unusable relays and no
// answer to the final dot deferred (the last also flags the message
// possibly_duplicated); 5xx failed, and a 5xx saying the mailbox does not
// exist also suppresses the address.
func outcomeOf(r store.DeliveryRecipient, res mta.Result, err error) store.Outcome {
	out := store.Outcome{Position: r.Position, Email: r.Email}
	relay := res.Relay
	if err == nil {
		out.Status, out.Event, out.SMTPCode = store.StatusSent, store.EventSent, 250
		out.SMTPResponse = strings.TrimSpace("250 " + res.Reply)
		out.EventData = eventData(map[string]any{"relay": relay, "smtp_code": 250, "smtp_response": out.SMTPResponse})
		return out
	}
	var me *mta.Error
	if !errors.As(err, &me) {
		me = &mta.Error{Text: err.Error()}
	}
	out.SMTPCode, out.SMTPResponse = me.Code, replyText(me)
	data := map[string]any{"relay": relay, "smtp_code": me.Code, "enhanced_code": me.Enhanced,
		"smtp_response": out.SMTPResponse}
	switch {
	case me.Permanent && !me.Config:
		out.Status, out.Event = store.StatusFailed, store.EventFailed
		data["reason"] = "rejected"
		if mailboxUnknown(me) {
			out.Suppress, data["reason"] = store.ReasonHardBounce, "mailbox_unknown"
		}
	default:
		out.Status, out.Event = store.StatusDeferred, store.EventDeferred
		out.PossiblyDuplicated = me.Ambiguous
		if me.Ambiguous {
			data["possibly_duplicated"] = true
		}
	}
	out.EventData = eventData(data)
	return out
}

// replyText is "550 5.1.1 text", as the upstream said it.
func replyText(e *mta.Error) string {
	if e.Code == 0 {
		return e.Text
	}
	parts := []string{strconv.Itoa(e.Code)}
	if e.Enhanced != "" {
		parts = append(parts, e.Enhanced)
	}
	return strings.Join(append(parts, e.Text), " ")
}

// mailboxUnknown reports a permanent answer meaning the address itself is
// bad (RFC 3463 §3.2: X.1.1 bad mailbox, X.1.2 bad system, X.1.3 bad
// syntax, X.1.6 mailbox moved, X.1.10 null MX per RFC 7505), or a bare 550
// that says so in words.
func mailboxUnknown(e *mta.Error) bool {
	switch e.Enhanced {
	case "5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10":
		return true
	}
	if e.Enhanced != "" || e.Code != 550 {
		return false
	}
	t := strings.ToLower(e.Text)
	for _, w := range []string{"user unknown", "no such user", "unknown user", "mailbox unavailable",
		"does not exist", "mailbox not found", "recipient address rejected"} {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// isRateAnswer reports a 421/451 that asks the sender to slow down.
func isRateAnswer(err error) bool {
	var me *mta.Error
	if !errors.As(err, &me) {
		return false
	}
	return ratelimit.IsRateAnswer(me.Code, me.Enhanced+" "+me.Text) || (me.Code/100 == 4 && strings.HasPrefix(me.Enhanced, "4.7."))
}

func eventData(m map[string]any) json.RawMessage {
	for k, v := range m {
		if s, ok := v.(string); ok && s == "" {
			delete(m, k)
		}
	}
	b, _ := json.Marshal(m)
	return b
}
