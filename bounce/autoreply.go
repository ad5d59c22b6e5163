package bounce

import (
	"strings"
)

// autoReplySubjects are lower-case subject fragments of out-of-office and
// other automatic answers, in several languages.
var autoReplySubjects = []string{
	"out of office", "out of the office", "automatic reply", "auto reply", "auto-reply",
	"autoreply", "auto response", "auto-response", "autoresponse", "automated response",
	"automatic response", "away from the office", "on vacation", "vacation reply",
	"abwesenheitsnotiz", "automatische antwort", "abwesend", "außer haus", "ausser haus",
	"nicht im büro", "réponse automatique", "reponse automatique", "absent du bureau",
	"absence du bureau", "message d'absence", "fuera de la oficina", "respuesta automática",
	"respuesta automatica", "risposta automatica", "fuori sede", "fuori ufficio",
	"resposta automática", "automatisch antwoord", "afwezig", "autosvar",
	"automaattinen vastaus", "odpowiedź automatyczna", "автоответ", "自動応答", "不在",
}

// autoReplyPrefixes are subject prefixes that mark an automatic answer only
// at the very start (they are ordinary words elsewhere).
var autoReplyPrefixes = []string{"auto:", "absence", "absent", "abwesenheit", "vacation", "ausente", "congé", "ooo:", "ooo ", "urlaub:"}

// replyPrefixes start the subject of a person's answer (lower case): an
// out-of-office phrase after them is the topic, not an auto-reply.
var replyPrefixes = []string{"re:", "aw:", "sv:", "antw:", "r:", "réf:", "ref:"}

// classifyAutoReply recognises automatic answers (RFC 3834 §5 and the
// vendor headers), by header first, then by subject, then by an empty
// Return-Path on a message that is no report.
func classifyAutoReply(m *msg, r *Report) bool {
	if !m.isAutoReply() {
		return false
	}
	r.Kind = KindAutoReply
	from := headerAddress(m.h.Get("From"))
	r.Results = append(r.Results, Result{Recipient: from, Reason: ReasonVacation, Rule: "auto-reply"})
	r.Reply = &Reply{From: from, Subject: m.get("Subject"), Text: m.replyText()}
	return true
}

// isAutoReply applies the auto-reply signals in order of reliability.
func (m *msg) isAutoReply() bool {
	as := strings.ToLower(strings.TrimSpace(m.h.Get("Auto-Submitted")))
	switch {
	case strings.HasPrefix(as, "auto-replied"):
		return true
	case as != "" && as != "no" && !m.isBulk() && m.answers():
		return true // RFC 3834 §5.1: auto-generated, answering one of our messages
	case m.h.Has("X-Autoreply"), m.h.Has("X-Autorespond"), m.h.Has("X-Autoresponder"),
		m.h.Has("X-Auto-Response-Suppress") && !m.isBulk():
		return true
	case strings.EqualFold(strings.TrimSpace(m.h.Get("Precedence")), "auto_reply"):
		return true
	case isAutoReplySubject(m.get("Subject")):
		return true
	case strings.TrimSpace(m.h.Get("Return-Path")) == "<>" && !m.isBulk():
		return true
	}
	return false
}

// answers reports whether the message refers to an earlier one (RFC 5322
// §3.6.4; RFC 3834 §3.1.5 asks responders to set In-Reply-To).
func (m *msg) answers() bool {
	return m.h.Has("In-Reply-To") || m.h.Has("References")
}

// isAutoReplySubject reports whether a subject announces an automatic
// answer.
func isAutoReplySubject(subject string) bool {
	s := strings.ToLower(strings.TrimSpace(subject))
	for _, p := range replyPrefixes {
		if strings.HasPrefix(s, p) {
			return false
		}
	}
	for _, p := range autoReplySubjects {
		if strings.Contains(s, p) {
			return true
		}
	}
	for _, p := range autoReplyPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// isBulk reports list or bulk traffic (RFC 2369, RFC 2919, Precedence).
func (m *msg) isBulk() bool {
	if m.h.Has("List-Id") || m.h.Has("List-Unsubscribe") || m.h.Has("List-Post") {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(m.h.Get("Precedence"))) {
	case "bulk", "list", "junk":
		return true
	}
	return false
}
