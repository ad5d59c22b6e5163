package mta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"slices"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Builder turns a Message into RFC 5322 bytes. The zero value is ready to
// use and draws random multipart boundaries.
type Builder struct {
	// Boundary returns the boundary of each multipart entity, called in the
	// order the entities are made (innermost first). Each value must be
	// 1–70 characters of RFC 2046 §5.1.1 bchars and must not occur in the
	// content. Default (nil): go-message's random 60-hex-digit boundary.
	Boundary func() string
}

// Build is Builder{}.Build(m).
func Build(m *Message) ([]byte, error) { return Builder{}.Build(m) }

// Build produces the message: CRLF line endings, no line over 998 octets
// (RFC 5322 §2.1.1), RFC 2047 encoded words for UTF-8 header text and file
// names, text and HTML as they are when they are 7bit data and
// quoted-printable otherwise, base64 attachments. The body is
// text/plain, text/html, or multipart/alternative when both are set; inline
// attachments wrap the HTML in multipart/related (RFC 2387); attachments put
// everything in multipart/mixed, outermost.
func (b Builder) Build(m *Message) ([]byte, error) {
	if err := validateMessage(m); err != nil {
		return nil, fmt.Errorf("build message: %w", err)
	}
	root := b.body(m)
	h := mailHeader(m, root.header)
	var buf bytes.Buffer
	buf.Grow(estimateSize(m))
	if err := writeEntity(nil, &buf, h, root); err != nil {
		return nil, fmt.Errorf("build message %s: %w", m.ID, err)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\r\n")) {
		// A single-part body without a final line break (RFC 5322 §2.3).
		buf.WriteString("\r\n")
	}
	return buf.Bytes(), nil
}

// entity is one node of the MIME tree: a leaf with a body or a multipart
// with parts.
type entity struct {
	header message.Header
	body   []byte
	parts  []*entity
}

// body builds the MIME tree of m's content (without the mail header).
func (b Builder) body(m *Message) *entity {
	var inline, attached []Attachment
	for _, a := range m.Attachments {
		if a.ContentID != "" && m.HTML != "" {
			inline = append(inline, a)
		} else {
			attached = append(attached, a)
		}
	}
	content := b.alternative(m)
	if len(inline) > 0 {
		mediaType, _, _ := content.header.ContentType()
		parts := append([]*entity{content}, attachmentParts(inline, "inline")...)
		content = b.multipart("related", map[string]string{"type": mediaType}, parts)
	}
	if len(attached) > 0 {
		parts := append([]*entity{content}, attachmentParts(attached, "attachment")...)
		content = b.multipart("mixed", nil, parts)
	}
	return content
}

// alternative is the text body, the HTML body, or both in
// multipart/alternative (RFC 2046 §5.1.4: plainest first).
func (b Builder) alternative(m *Message) *entity {
	switch {
	case m.Text != "" && m.HTML != "":
		return b.multipart("alternative", nil, []*entity{textPart("plain", m.Text), textPart("html", m.HTML)})
	case m.HTML != "":
		return textPart("html", m.HTML)
	default:
		return textPart("plain", m.Text)
	}
}

// multipart makes a multipart/sub entity; its boundary comes from
// b.Boundary when set.
func (b Builder) multipart(sub string, params map[string]string, parts []*entity) *entity {
	if params == nil {
		params = map[string]string{}
	}
	if b.Boundary != nil {
		params["boundary"] = b.Boundary()
	}
	e := &entity{parts: parts}
	e.header.SetContentType("multipart/"+sub, params)
	return e
}

// textPart is a UTF-8 text leaf. Text that is already 7bit data (RFC 2045
// §2.7: US-ASCII without NUL, lines of at most 998 octets) goes as it is,
// with its line breaks made CRLF; anything else in quoted-printable (RFC
// 2045 §6.7), which also turns bare LF into CRLF and keeps lines at 76
// octets.
func textPart(sub, text string) *entity {
	e := &entity{}
	cte := "quoted-printable"
	if body, ok := sevenBit(text); ok {
		e.body, cte = body, "7bit"
	} else {
		e.body = []byte(text)
	}
	// Added last to first: go-message writes fields in reverse.
	e.header.Set("Content-Transfer-Encoding", cte)
	e.header.SetContentType("text/"+sub, map[string]string{"charset": "utf-8"})
	return e
}

// maxLine is the longest line RFC 5322 §2.1.1 allows, without its CRLF.
const maxLine = 998

// sevenBit returns text with CRLF line breaks when it is 7bit data: ASCII
// without NUL, CR only before LF, no line over maxLine octets. It works a
// line at a time (the line ends found with strings.Cut, each line checked
// whole and copied at once) rather than a byte at a time: it sees every
// byte of every text part.
func sevenBit(text string) ([]byte, bool) {
	out := make([]byte, 0, len(text)+len(text)/32)
	for len(text) > 0 {
		line, rest, found := strings.Cut(text, "\n")
		text = rest
		if found {
			line = strings.TrimSuffix(line, "\r")
		}
		if len(line) > maxLine || !plainASCII(line) {
			return nil, false
		}
		out = append(out, line...)
		if found {
			out = append(out, '\r', '\n')
		}
	}
	return out, true
}

// plainASCII reports whether s is ASCII without NUL and CR.
func plainASCII(s string) bool {
	if strings.IndexByte(s, '\r') >= 0 || strings.IndexByte(s, 0) >= 0 {
		return false
	}
	// Eight bytes at a time: any high bit set is a byte over 0x7f.
	for ; len(s) >= 8; s = s[8:] {
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if w&0x8080808080808080 != 0 {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// attachmentParts makes base64 leaves with Content-Disposition disp (RFC
// 2183) and, when set, Content-ID (RFC 2392).
func attachmentParts(atts []Attachment, disp string) []*entity {
	parts := make([]*entity, 0, len(atts))
	for _, a := range atts {
		e := &entity{body: a.Content}
		mediaType, params, _ := mime.ParseMediaType(a.ContentType)
		if params == nil {
			params = map[string]string{}
		}
		params["name"] = a.Filename
		// Added last to first: go-message writes fields in reverse.
		if a.ContentID != "" {
			e.header.Set("Content-Id", "<"+strings.Trim(a.ContentID, "<>")+">")
		}
		e.header.Set("Content-Transfer-Encoding", "base64")
		e.header.SetContentDisposition(disp, map[string]string{"filename": a.Filename})
		e.header.SetContentType(mediaType, params)
		parts = append(parts, e)
	}
	return parts
}

// writeEntity writes e as the top-level message (parent nil, onto w) or as
// a part of parent.
func writeEntity(parent *message.Writer, w io.Writer, h message.Header, e *entity) error {
	var mw *message.Writer
	var err error
	if parent == nil {
		mw, err = message.CreateWriter(w, h)
	} else {
		mw, err = parent.CreatePart(h)
	}
	if err != nil {
		return err
	}
	if e.parts == nil {
		if _, err := mw.Write(e.body); err != nil {
			return err
		}
		return mw.Close()
	}
	for _, p := range e.parts {
		if err := writeEntity(mw, nil, p.header, p); err != nil {
			return err
		}
	}
	return mw.Close()
}

// mailHeader is the RFC 5322 header of m followed by the fields of the
// top-level entity (Content-*). go-message writes fields in reverse order of
// addition, so they are added from last to first.
func mailHeader(m *Message, content message.Header) message.Header {
	var h mail.Header
	fields := [][2]string{}
	add := func(k, v string) { fields = append(fields, [2]string{k, v}) }
	add("Date", m.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	add("From", formatAddress(m.From))
	if m.ReplyTo != nil {
		add("Reply-To", formatAddress(*m.ReplyTo))
	}
	if len(m.To) > 0 {
		add("To", formatAddressList(m.To))
	}
	if len(m.Cc) > 0 {
		add("Cc", formatAddressList(m.Cc))
	}
	add("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	add("Message-Id", "<"+m.ID+"@"+domainOf(m.From.Email)+">")
	add("X-Mailgate-Id", m.ID)
	if m.FeedbackID != "" {
		add("Feedback-Id", m.FeedbackID)
	}
	for _, k := range sortedKeys(m.Headers) {
		add(k, mime.QEncoding.Encode("utf-8", m.Headers[k]))
	}
	add("Mime-Version", "1.0")
	var contentFields [][2]string
	for f := content.Fields(); f.Next(); {
		contentFields = append(contentFields, [2]string{f.Key(), f.Value()})
	}
	fields = append(fields, contentFields...)
	for _, f := range slices.Backward(fields) {
		h.Add(f[0], f[1])
	}
	return h.Header
}

// formatAddress is RFC 5322 §3.4 name-addr; a non-ASCII display name is
// RFC 2047 encoded by net/mail.
func formatAddress(a Address) string {
	return (&netmail.Address{Name: a.Name, Address: a.Email}).String()
}

func formatAddressList(l []Address) string {
	s := make([]string, len(l))
	for i, a := range l {
		s[i] = formatAddress(a)
	}
	return strings.Join(s, ", ")
}

// domainOf is the part after the last "@".
func domainOf(email string) string {
	return email[strings.LastIndexByte(email, '@')+1:]
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// estimateSize is a buffer size hint: base64 grows content by 4/3, QP by
// a little less for mostly-ASCII text.
func estimateSize(m *Message) int {
	n := 2048 + len(m.Text)*5/4 + len(m.HTML)*5/4
	for _, a := range m.Attachments {
		n += len(a.Content)*4/3 + len(a.Content)/38 + 512
	}
	return n
}

// errHeaderValue is returned for a header value with CR, LF or NUL, which
// would let it inject header fields.
var errHeaderValue = errors.New("header value contains CR, LF or NUL")
