package bounce

import (
	"strings"

	"github.com/emersion/go-message"
)

// maxNotice bounds the text read as a bounce notice; notices are short, and
// the heuristics are linear in it.
const maxNotice = 256 << 10

// msg is a parsed message with the accessors the classifiers share.
type msg struct {
	t        *tree
	h        message.Header
	body     string // the human-readable text: first text/plain, else HTML as text
	notice   string // body in ASCII lower case, cut before the returned original
	noticeUC string // the same text in its original case (same length)
	cut      int    // index in body of the returned original's marker, or -1
	orig     *message.Header
	reply    *string // cache of rawReplyText
	tbl      *ruleTable
}

// newMsg prepares the accessors of a parsed tree.
func newMsg(t *tree, tbl *ruleTable) *msg {
	m := &msg{t: t, h: t.header, tbl: tbl}
	m.body = m.mainText()
	m.cut = originalMarker(m.body)
	m.notice = m.body
	if m.cut >= 0 {
		m.notice = m.body[:m.cut]
	}
	m.noticeUC = m.notice[:min(len(m.notice), maxNotice)]
	m.notice = asciiLower(m.noticeUC)
	m.orig = m.findOriginal()
	return m
}

// get returns a decoded header field of the message.
func (m *msg) get(name string) string {
	v, err := m.h.Text(name)
	if err != nil {
		return m.h.Get(name)
	}
	return v
}

// mainText returns the first text/plain part not inside a returned original,
// else the first text/html part converted to text.
func (m *msg) mainText() string {
	if p := m.t.first("text/plain"); p != nil {
		return string(p.body)
	}
	if p := m.t.first("text/html"); p != nil {
		return htmlToText(string(p.body))
	}
	return ""
}

// maxCoverNote bounds the text of a notice's first part read as a cover
// note for the part after it.
const maxCoverNote = 1024

// addAttachedDetails appends to a bounce notice too short to name an
// address ("the details are attached") the next text/plain part, where
// such a notice puts them, cut before a copy marker. Only bounces: a
// person's short reply with a text attachment keeps its own text. A part
// that starts with a message header is the returned original sent as
// plain text, whose addresses and words are the sender's, not the
// notice's.
func (m *msg) addAttachedDetails() {
	if len(m.notice) >= maxCoverNote || strings.IndexByte(m.notice, '@') >= 0 {
		return
	}
	p := m.t.first("text/plain")
	if p == nil {
		return
	}
	q := m.t.nextText(p)
	if q == nil || looksLikeMessage(q.body) {
		return
	}
	details := string(q.body[:min(len(q.body), maxNotice)])
	if i := originalMarker(details); i >= 0 {
		details = details[:i]
	}
	m.noticeUC += "\n" + details
	m.notice = asciiLower(m.noticeUC)
}

// looksLikeMessage reports whether text starts with a message header: a
// block of header fields with a From, Received or Message-ID among them.
func looksLikeMessage(text []byte) bool {
	h := parseHeaderBlock(trimLeadingBlank(text))
	return h.Get("From") != "" || h.Get("Received") != "" || h.Get("Message-Id") != ""
}

// nextText returns the text/plain part after p that is no part of an
// enclosed report, or nil.
func (t *tree) nextText(p *part) *part {
	for i := range t.parts {
		if &t.parts[i] != p {
			continue
		}
		for j := i + 1; j < len(t.parts); j++ {
			if q := &t.parts[j]; q.mediaType == "text/plain" && !q.enclosed {
				return q
			}
		}
	}
	return nil
}

// findOriginal returns the header of the returned original message, from a
// message/rfc822 or text/rfc822-headers part (RFC 3462 §2), found inline
// after a "copy of the message follows" marker in the text, or from the
// text/plain part after the notice when it starts with a message header
// (looksLikeMessage).
func (m *msg) findOriginal() *message.Header {
	for i := range m.t.parts {
		p := &m.t.parts[i]
		if isOriginal(p.mediaType) {
			h := parseHeaderBlock(trimLeadingBlank(p.body))
			if h.Len() > 0 {
				return &h
			}
		}
	}
	if m.cut >= 0 {
		rest := m.body[m.cut:]
		if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
			h := parseHeaderBlock(dedent(trimLeadingBlank([]byte(rest[nl+1:]))))
			if h.Len() > 0 {
				return &h
			}
		}
	}
	if p := m.t.first("text/plain"); p != nil {
		if q := m.t.nextText(p); q != nil && looksLikeMessage(q.body) {
			h := parseHeaderBlock(trimLeadingBlank(q.body))
			return &h // the original returned as a plain-text part
		}
	}
	return nil
}

// origGet returns a decoded field of the returned original, or "".
func (m *msg) origGet(name string) string {
	if m.orig == nil {
		return ""
	}
	v, err := m.orig.Text(name)
	if err != nil {
		return m.orig.Get(name)
	}
	return v
}

// asciiLower lower-cases the ASCII letters of s only, so that offsets in
// the result are offsets in s.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// trimLeadingBlank drops leading blank lines and indentation-free junk such
// as an mbox "From " line.
func trimLeadingBlank(b []byte) []byte {
	for len(b) > 0 {
		switch {
		case b[0] == '\n':
			b = b[1:]
		case len(b) > 1 && b[0] == '\r' && b[1] == '\n':
			b = b[2:]
		case len(b) > 5 && string(b[:5]) == "From ":
			i := strings.IndexByte(string(b[:min(len(b), 1000)]), '\n')
			if i < 0 {
				return b
			}
			b = b[i+1:]
		default:
			return b
		}
	}
	return b
}

// dedent removes the indentation of b's first line from every line that
// starts with it: a returned original quoted indented (fml indents it by
// three spaces) would otherwise read as one folded header field.
func dedent(b []byte) []byte {
	n := 0
	for n < len(b) && (b[n] == ' ' || b[n] == '\t') {
		n++
	}
	if n == 0 {
		return b
	}
	prefix := string(b[:n])
	lines := strings.SplitAfter(string(b[:min(len(b), maxKeptBody)]), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return []byte(strings.Join(lines, ""))
}
