package bounce

import (
	"bufio"
	"bytes"
	"io"
	nettextproto "net/textproto"
	"strings"

	"github.com/emersion/go-message"
	// Registers decoders for non-UTF-8 charsets (ISO-2022-JP, Windows-1252,
	// ...) with go-message, through its init function.
	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// maxKeptBody bounds how much of one returned original (message/rfc822) is
// kept: its header is what matters.
const maxKeptBody = 32 << 10

// part is one leaf of the MIME tree whose body we keep.
type part struct {
	mediaType string
	params    map[string]string
	header    message.Header
	body      []byte
	depth     int
	enclosed  bool // inside a returned message that is itself a report
}

// tree is the flattened MIME structure of a message.
type tree struct {
	header    message.Header
	mediaType string
	params    map[string]string
	parts     []part
	enclosed  bool  // walking inside an enclosed report
	count     int   // entities seen, including multiparts
	budget    int64 // bytes of decoded body still allowed
	stopped   bool  // MaxParts was reached; the rest was not read
	truncated bool  // some part was skipped: too deep, or past MaxParts
}

// readTree parses raw into a tree, enforcing the limits. It fails only when
// not even the top-level header can be read.
func readTree(raw []byte, lim Limits) (*tree, error) {
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return nil, err
	}
	t := &tree{header: e.Header, budget: lim.MaxBytes}
	t.mediaType, t.params = contentType(e.Header)
	t.walk(e, 0, lim)
	if len(t.parts) == 0 && strings.HasPrefix(t.mediaType, "multipart/") {
		t.bodyAsText(raw)
	}
	return t, nil
}

// bodyAsText keeps the body of a multipart message without any boundary
// as one text part: some MTAs declare multipart/report and send plain text.
func (t *tree) bodyAsText(raw []byte) {
	i := bytes.Index(raw, []byte("\n\n"))
	if j := bytes.Index(raw, []byte("\r\n\r\n")); j >= 0 && (i < 0 || j < i) {
		i = j + 2
	}
	if i < 0 {
		return
	}
	body := raw[i+2:]
	if int64(len(body)) > t.budget {
		body = body[:t.budget]
	}
	t.budget -= int64(len(body))
	t.parts = append(t.parts, part{mediaType: "text/plain", body: body})
}

// walk visits e and its children depth first.
func (t *tree) walk(e *message.Entity, depth int, lim Limits) {
	if t.stopped {
		return
	}
	t.count++
	if t.count > lim.MaxParts {
		t.stopped, t.truncated = true, true
		return
	}
	if depth > lim.MaxDepth {
		t.truncated = true // skip this subtree, keep its siblings
		return
	}
	mt, params := contentType(e.Header)
	if strings.HasPrefix(mt, "multipart/") {
		if b := params["boundary"]; b != "" {
			t.walkMultipart(textproto.NewMultipartReader(e.Body, b), depth, lim)
		}
		return
	}
	if !keepBody(mt) {
		return
	}
	limit := t.budget
	if isOriginal(mt) && limit > maxKeptBody {
		limit = maxKeptBody
	}
	body, _ := io.ReadAll(io.LimitReader(e.Body, limit))
	t.budget -= int64(len(body))
	t.parts = append(t.parts, part{mediaType: mt, params: params, header: e.Header, body: body, depth: depth, enclosed: t.enclosed})
	if mt == "message/rfc822" || mt == "message/global" {
		t.walkEnclosedReport(body, depth, lim)
	}
}

// walkEnclosedReport descends into a returned message that is itself a
// delivery report (a bounce forwarded by a gateway), so that its status
// parts are read too.
func (t *tree) walkEnclosedReport(body []byte, depth int, lim Limits) {
	if !bytes.Contains(bytes.ToLower(body[:min(len(body), 8<<10)]), []byte("multipart/report")) {
		return // cheap test before parsing the header
	}
	h := parseHeaderBlock(trimLeadingBlank(body))
	if mt, _ := contentType(h); mt != "multipart/report" {
		return
	}
	if inner, _ := message.Read(bytes.NewReader(trimLeadingBlank(body))); inner != nil {
		outer := t.enclosed
		t.enclosed = true
		t.walk(inner, depth+1, lim)
		t.enclosed = outer
	}
}

// walkMultipart visits the children of a multipart entity, stopping at the
// first unreadable part.
func (t *tree) walkMultipart(mr *textproto.MultipartReader, depth int, lim Limits) {
	for !t.stopped {
		p, err := mr.NextPart()
		if err != nil {
			return // io.EOF or a malformed part: keep what was read
		}
		// An unknown charset or encoding still yields a readable entity.
		child, _ := message.New(message.Header{Header: p.Header}, p)
		if child == nil {
			return
		}
		t.walk(child, depth+1, lim)
	}
}

// contentType returns the lower-case media type and parameters of a
// header, tolerating the malformed fields real bounces carry (missing
// semicolons, trailing semicolons, upper-case names) where
// mime.ParseMediaType gives up. The default is text/plain (RFC 2045 §5.2).
func contentType(h message.Header) (string, map[string]string) {
	mt, params, err := h.ContentType()
	if err == nil && mt != "" {
		return mt, params
	}
	raw := h.Get("Content-Type")
	fields := strings.Split(raw, ";")
	mt = strings.ToLower(strings.TrimSpace(fields[0]))
	if i := strings.IndexAny(mt, " \t"); i >= 0 {
		fields = append(fields, mt[i:])
		mt = mt[:i]
	}
	if mt == "" || !strings.Contains(mt, "/") {
		mt = "text/plain"
	}
	params = map[string]string{}
	for _, f := range fields[1:] {
		for _, kv := range strings.Fields(f) {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	}
	return mt, params
}

// keepBody reports whether a leaf of this type can matter to the report.
func keepBody(mt string) bool {
	return strings.HasPrefix(mt, "text/") || strings.HasPrefix(mt, "message/")
}

// isOriginal reports whether the type carries the returned original message
// or its header (RFC 3462 §2, RFC 6533 §3).
func isOriginal(mt string) bool {
	switch mt {
	case "message/rfc822", "text/rfc822-headers", "message/global",
		"message/global-headers", "message/partial", "message/rfc822-headers":
		return true
	}
	return false
}

// first returns the first kept part of the given media type.
func (t *tree) first(types ...string) *part {
	for i := range t.parts {
		for _, mt := range types {
			if t.parts[i].mediaType == mt {
				return &t.parts[i]
			}
		}
	}
	return nil
}

// parseHeaderBlock reads a header block from b, ignoring what follows it.
// A malformed line (which stops textproto.ReadHeader) is skipped, so that
// the fields after it, such as X-Mailgate-ID, are still read.
func parseHeaderBlock(b []byte) message.Header {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
	if err == nil {
		return message.Header{Header: h}
	}
	end := len(b)
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		end = i
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 && i < end {
		end = i
	}
	var tolerant textproto.Header
	for _, kv := range parseFieldList(bytes.ReplaceAll(b[:end], []byte("\r"), nil)) {
		tolerant.Add(textprotoKey(kv[0]), kv[1])
	}
	return message.Header{Header: tolerant}
}

// textprotoKey returns the canonical form of a lower-case field name.
func textprotoKey(k string) string {
	return nettextproto.CanonicalMIMEHeaderKey(k)
}
