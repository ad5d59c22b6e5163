package bounce

import (
	"strings"
)

// forwardPrefixes are subject prefixes of forwarded mail (lower case).
var forwardPrefixes = []string{"fwd:", "fw:", "wg:", "tr:", "wtr:", "rv:", "i:", "enc:", "doorst:"}

// forwardMarkers open a forwarded message in a body (lower case).
var forwardMarkers = []string{
	"---------- forwarded message", "begin forwarded message", "-------- forwarded message",
	"---------- weitergeleitete nachricht", "-------- weitergeleitete nachricht",
	"anfang der weitergeleiteten nachricht", "-------- message transféré", "---------- message transféré",
	"début du message réexpédié", "début du message transféré",
}

// classifyReply recognises a person answering a previous message: it
// refers to one (In-Reply-To, References) or quotes one under an
// attribution line, and it is neither list traffic nor a forward.
func classifyReply(m *msg, r *Report) bool {
	if m.isBulk() || m.isForward() || m.t.mediaType == "multipart/report" {
		return false // list traffic, forwards, and reports such as read receipts
	}
	if !m.answers() && !hasQuotedHistory(m.rawReplyText()) {
		return false
	}
	r.Kind = KindReply
	r.Reply = &Reply{From: headerAddress(m.h.Get("From")), Subject: m.get("Subject"), Text: m.replyText()}
	return true
}

// isForward reports whether the message forwards another.
func (m *msg) isForward() bool {
	if m.hasForwardSubject() {
		return true
	}
	text := strings.ToLower(m.rawReplyText())
	head := text[:min(len(text), 4000)]
	for _, mk := range forwardMarkers {
		if i := strings.Index(head, mk); i >= 0 && !hasQuotedHistory(head[:i]) {
			return true // a forward, unless it sits inside a quoted answer
		}
	}
	return false
}

// maxReply bounds the text of a reply that is read: people write short
// answers, and quote stripping is linear in the text.
const maxReply = 256 << 10

// hasForwardSubject reports a subject starting with a forward prefix.
func (m *msg) hasForwardSubject() bool {
	s := strings.ToLower(strings.TrimSpace(m.get("Subject")))
	for _, p := range forwardPrefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// rawReplyText is the text of the answer before stripping: the first
// text/plain part, else the HTML part with its quote blocks removed.
func (m *msg) rawReplyText() string {
	if m.reply == nil {
		s := m.readReplyText()
		m.reply = &s
	}
	return *m.reply
}

// readReplyText extracts the text rawReplyText returns.
func (m *msg) readReplyText() string {
	if p := m.t.first("text/plain"); p != nil {
		return string(p.body[:min(len(p.body), maxReply)])
	}
	if p := m.t.first("text/html"); p != nil {
		return htmlToText(dropHTMLQuotes(string(p.body[:min(len(p.body), maxReply)])))
	}
	return ""
}

// replyText is the stripped text of the answer.
func (m *msg) replyText() string {
	return StripReply(m.rawReplyText())
}
