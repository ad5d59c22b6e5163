package api

import (
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Attachment rules, decided here:
//   - content_type is exactly "type/subtype" (RFC 2045 §5.1 tokens);
//     parameters such as "; charset=utf-8" are refused, so the MIME builder
//     never has to re-parse them.
//   - content is standard base64 with padding (RFC 4648 §4); white space,
//     line breaks included, and the URL-safe alphabet are refused. An empty
//     content (an empty file) is accepted.
//   - content_id, when given, is the bare id without "<>": printable ASCII
//     without spaces, '<' or '>', at most MaxHeaderValue characters, and
//     unique within the message.
const (
	msgContentType = "must be a type/subtype media type without parameters, such as application/pdf"
	msgContent     = "must be standard base64 with padding (RFC 4648 §4), without white space"
	msgContentID   = "must be printable ASCII without spaces, '<' or '>'"
)

// attachments checks every attachment and returns the decoded size of the
// valid contents.
func (c *messageCheck) attachments(atts []AttachmentRequest) int64 {
	var size int64
	for i := range atts {
		a := &atts[i]
		ptr := "/attachments/" + strconv.Itoa(i)
		c.attachmentFilename(ptr+"/filename", a.Filename)
		if msg := contentTypeProblem(a.ContentType); msg != "" {
			c.add(ptr+"/content_type", msg)
		}
		if n, ok := base64DecodedSize(a.Content); ok {
			size += n
		} else {
			c.add(ptr+"/content", msgContent)
		}
		c.attachmentContentID(ptr+"/content_id", atts[:i], a.ContentID)
	}
	return size
}

func (c *messageCheck) attachmentFilename(ptr, name string) {
	if name == "" {
		c.add(ptr, "is required")
	} else if msg := headerTextProblem(name, false); msg != "" {
		c.add(ptr, msg)
	}
}

func (c *messageCheck) attachmentContentID(ptr string, earlier []AttachmentRequest, id string) {
	if id == "" {
		return
	}
	msg := headerTextProblem(id, false)
	if msg == "" {
		msg = contentIDProblem(id, c.lim.MaxHeaderValue)
	}
	if msg == "" {
		for _, e := range earlier {
			if e.ContentID == id {
				msg = "duplicate content_id"
				break
			}
		}
	}
	if msg != "" {
		c.add(ptr, msg)
	}
}

// contentIDProblem checks a bare Content-ID (RFC 2045 §7, RFC 5322 §3.6.4
// msg-id without the angle brackets, kept simple: visible ASCII).
func contentIDProblem(id string, maxLen int) string {
	for i := 0; i < len(id); i++ {
		if id[i] < 33 || id[i] > 126 || id[i] == '<' || id[i] == '>' {
			return msgContentID
		}
	}
	if utf8.RuneCountInString(id) > maxLen {
		return fmt.Sprintf("must be at most %d characters", maxLen)
	}
	return ""
}

// contentTypeProblem checks "type/subtype" with both parts RFC 2045 §5.1
// tokens.
func contentTypeProblem(ct string) string {
	if ct == "" {
		return "is required"
	}
	if msg := headerTextProblem(ct, false); msg != "" {
		return msg
	}
	typ, sub, ok := strings.Cut(ct, "/")
	if !ok || !isMIMEToken(typ) || !isMIMEToken(sub) {
		return msgContentType
	}
	return ""
}

// isMIMEToken reports whether s is an RFC 2045 §5.1 token: one or more
// US-ASCII characters except SPACE, CTLs and tspecials.
func isMIMEToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 127 || strings.IndexByte(`()<>@,;:\"/[]?=`, s[i]) >= 0 {
			return false
		}
	}
	return true
}

// base64DecodedSize validates s as padded standard base64 and returns the
// decoded length. It decodes through a streaming decoder into io.Discard,
// so memory stays constant whatever the size. encoding/base64 skips CR and
// LF and would accept data after a padded block at a chunk boundary, so
// both are refused here before decoding.
func base64DecodedSize(s string) (int64, bool) {
	if len(s)%4 != 0 || strings.ContainsAny(s, "\r\n") {
		return 0, false
	}
	if i := strings.IndexByte(s, '='); i >= 0 && i < len(s)-2 {
		return 0, false
	}
	n, err := io.Copy(io.Discard, base64.NewDecoder(base64.StdEncoding.Strict(), strings.NewReader(s)))
	if err != nil {
		return 0, false
	}
	return n, true
}

// base64SizeEstimate is the decoded length of s if it is valid padded
// base64, computed from its length alone.
func base64SizeEstimate(s string) int64 {
	n := int64(len(s)) / 4 * 3
	if strings.HasSuffix(s, "==") {
		return n - 2
	}
	if strings.HasSuffix(s, "=") {
		return n - 1
	}
	return n
}

// estimateMessageSize is text + html + the decoded attachment sizes as
// their lengths say, without decoding anything.
func estimateMessageSize(req *MessageRequest) int64 {
	size := int64(len(req.Text)) + int64(len(req.HTML))
	for i := range req.Attachments {
		size += base64SizeEstimate(req.Attachments[i].Content)
	}
	return size
}
