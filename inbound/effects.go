package inbound

import (
	"encoding/json"
	"strings"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/store"
)

// bounceData is the data of a message.bounced event.
type bounceData struct {
	// Type is hard (the address is bad) or soft.
	Type string `json:"type"`
	// Reason is bounce's reason vocabulary (userunknown, mailboxfull, …).
	Reason string `json:"reason"`
	// Status is the RFC 3463 status code, e.g. 5.1.1.
	Status string `json:"status"`
	// Diagnostic is the remote server's explanation.
	Diagnostic string `json:"diagnostic"`
	// ReplyCode is the SMTP reply code, omitted when unknown.
	ReplyCode int `json:"reply_code,omitempty"`
	// Rule is the id of the rule that decided Reason and Type
	// (bounce.Result.Rule).
	Rule string `json:"rule"`
	// Authenticated is true when a valid VERP token named the recipient;
	// false when the report was matched by its headers alone and changed
	// nothing.
	Authenticated bool `json:"authenticated"`
}

// complaintData is the data of a message.complained event.
type complaintData struct {
	// FeedbackType is the ARF Feedback-Type (RFC 5965 §3.1).
	FeedbackType string `json:"feedback_type"`
	// Authenticated: as in bounceData.
	Authenticated bool `json:"authenticated"`
}

// autoReplyData is the data of a message.auto_replied event.
type autoReplyData struct {
	From    string `json:"from"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	// Authenticated: as in bounceData.
	Authenticated bool `json:"authenticated"`
}

// replyData is the data of a message.replied event.
type replyData struct {
	From        string       `json:"from"`
	Subject     string       `json:"subject"`
	Text        string       `json:"text"`
	InReplyTo   string       `json:"in_reply_to"`
	Attachments []Attachment `json:"attachments"`
	// Authenticated: as in bounceData. A person's reply normally answers
	// the From address and is matched by In-Reply-To or References: false.
	Authenticated bool `json:"authenticated"`
}

// target is one recipient a report is about, with the result describing it.
type target struct {
	position int
	email    string
	result   bounce.Result
}

// concerned lists the recipients of the matched message the report is
// about. With a VERP match it is the one the token names (described by the
// result for that address, else the first result). Otherwise each result
// whose recipient is one of the message's; failing that, a message with a
// single recipient is about that recipient. Replies and auto-replies are
// about the recipient whose address sent them, if any.
func concerned(m match, rep *bounce.Report) []target {
	t := m.target
	if m.position >= 0 {
		r := t.Recipients[m.position]
		return []target{{position: r.Position, email: r.Email, result: resultFor(rep, r.Email)}}
	}
	if rep.Kind == bounce.KindReply || rep.Kind == bounce.KindAutoReply {
		if rep.Reply != nil {
			if i := recipientIndex(t, rep.Reply.From); i >= 0 {
				return []target{{position: i, email: t.Recipients[i].Email}}
			}
		}
		return []target{{position: -1}}
	}
	var out []target
	seen := map[int]bool{}
	for _, res := range rep.Results {
		if i := recipientIndex(t, res.Recipient); i >= 0 && !seen[i] {
			seen[i] = true
			out = append(out, target{position: i, email: t.Recipients[i].Email, result: res})
		}
	}
	if len(out) == 0 && len(t.Recipients) == 1 {
		r := t.Recipients[0]
		out = append(out, target{position: r.Position, email: r.Email, result: resultFor(rep, r.Email)})
	}
	return out
}

// resultFor is the result about email, else the first result, else none.
func resultFor(rep *bounce.Report, email string) bounce.Result {
	for _, res := range rep.Results {
		if strings.EqualFold(strings.TrimSpace(res.Recipient), email) {
			return res
		}
	}
	if len(rep.Results) > 0 {
		return rep.Results[0]
	}
	return bounce.Result{}
}

// effect is what the report does to one concerned recipient; ok is false
// when it does nothing (delayed, unknown). A report that is not
// authenticated (no valid VERP token named the recipient) only appends its
// event, marked so: it changes no status, suppresses nobody and neither
// counts nor resets soft bounces, since anyone who saw the message's
// headers, another recipient for one, can quote them.
func effect(rep *bounce.Report, tg target, attachments []Attachment, authenticated bool) (store.InboundEffect, bool) {
	ef := store.InboundEffect{Position: tg.position, Email: tg.email}
	switch rep.Kind {
	case bounce.KindBounce:
		ef.Status, ef.Event = store.StatusBounced, store.EventBounced
		ef.EventData = eventJSON(bounceData{Type: bounceType(tg.result.Hard), Reason: reasonLabel(tg.result),
			Status: tg.result.Status, Diagnostic: tg.result.Diagnostic, ReplyCode: tg.result.ReplyCode,
			Rule: tg.result.Rule, Authenticated: authenticated})
		if tg.result.Hard {
			ef.Suppress = store.ReasonHardBounce
		} else {
			ef.SoftBounce = true
		}
	case bounce.KindComplaint:
		ef.Status, ef.Event, ef.Suppress = store.StatusComplained, store.EventComplained, store.ReasonComplaint
		ef.EventData = eventJSON(complaintData{FeedbackType: rep.FeedbackType, Authenticated: authenticated})
	case bounce.KindDelivered:
		ef.ResetSoftBounces = true
	case bounce.KindAutoReply:
		ef.Event, ef.ResetSoftBounces = store.EventAutoReplied, true
		r := replyOf(rep)
		ef.EventData = eventJSON(autoReplyData{From: r.From, Subject: r.Subject, Text: r.Text,
			Authenticated: authenticated})
	case bounce.KindReply:
		ef.Event, ef.ResetSoftBounces = store.EventReplied, true
		r := replyOf(rep)
		if attachments == nil {
			attachments = []Attachment{}
		}
		ef.EventData = eventJSON(replyData{From: r.From, Subject: r.Subject, Text: r.Text,
			InReplyTo: rep.Refs.InReplyTo, Attachments: attachments, Authenticated: authenticated})
	default:
		return ef, false
	}
	if !authenticated {
		ef = store.InboundEffect{Position: ef.Position, Email: ef.Email, Event: ef.Event, EventData: ef.EventData}
		return ef, ef.Event != ""
	}
	return ef, true
}

func replyOf(rep *bounce.Report) bounce.Reply {
	if rep.Reply == nil {
		return bounce.Reply{}
	}
	return *rep.Reply
}

func bounceType(hard bool) string {
	if hard {
		return "hard"
	}
	return "soft"
}

// reasonLabel is the result's reason, "undefined" when it has none.
func reasonLabel(r bounce.Result) string {
	if r.Reason == "" {
		return bounce.ReasonUndefined
	}
	return r.Reason
}

// eventJSON marshals event data made only of strings, ints and slices of
// such structs, which cannot fail.
func eventJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
