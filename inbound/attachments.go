package inbound

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 header words
)

// Attachment is the metadata of one file attached to a reply; the content
// is not kept.
type Attachment struct {
	// Filename is the decoded file name.
	Filename string `json:"filename"`
	// ContentType is the part's media type, e.g. application/pdf.
	ContentType string `json:"content_type"`
	// Size is the decoded size in bytes.
	Size int64 `json:"size"`
}

// Limits of attachment listing, so hostile MIME costs bounded work.
const (
	maxAttachDepth = 10
	maxAttachParts = 200
)

// attachments lists the parts of raw that are files (a Content-Disposition
// of attachment, or a file name on a non-text part). MIME walking is
// go-message's; unreadable parts are skipped, so the list may be partial.
func attachments(raw []byte) []Attachment {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil
	}
	w := &attachWalker{}
	w.walk(e, 0)
	return w.out
}

type attachWalker struct {
	out   []Attachment
	parts int
}

func (w *attachWalker) walk(e *message.Entity, depth int) {
	w.parts++
	if w.parts > maxAttachParts || depth > maxAttachDepth {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) || (err != nil && p == nil) {
				return
			}
			w.walk(p, depth+1)
			if w.parts > maxAttachParts {
				return
			}
		}
	}
	if a, ok := attachmentOf(e); ok {
		w.out = append(w.out, a)
	}
}

// attachmentOf describes e when it is a file.
func attachmentOf(e *message.Entity) (Attachment, bool) {
	ct, ctParams, _ := e.Header.ContentType()
	disp, dParams, _ := e.Header.ContentDisposition()
	name := dParams["filename"]
	if name == "" {
		name = ctParams["name"]
	}
	isText := strings.HasPrefix(ct, "text/") || ct == ""
	if disp != "attachment" && (name == "" || isText) {
		return Attachment{}, false
	}
	if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
		name = dec
	}
	n, _ := io.Copy(io.Discard, e.Body)
	if ct == "" {
		ct = "application/octet-stream"
	}
	return Attachment{Filename: name, ContentType: ct, Size: n}, true
}
