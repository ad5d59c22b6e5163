package mta

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// part is a parsed MIME entity: its media type, decoded body (leaves) and
// children (multiparts).
type part struct {
	header message.Header
	typ    string
	body   []byte
	parts  []*part
}

// tree is a compact view of the structure: "multipart/mixed[text/plain,image/png]".
func (p *part) tree() string {
	if len(p.parts) == 0 {
		return p.typ
	}
	var kids []string
	for _, c := range p.parts {
		kids = append(kids, c.tree())
	}
	return p.typ + "[" + strings.Join(kids, ",") + "]"
}

// leaves are the non-multipart entities in order.
func (p *part) leaves() []*part {
	if len(p.parts) == 0 {
		return []*part{p}
	}
	var out []*part
	for _, c := range p.parts {
		out = append(out, c.leaves()...)
	}
	return out
}

// parseMessage reads raw back with go-message, decoding transfer encodings.
func parseMessage(t *testing.T, raw []byte) *part {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse built message: %v", err)
	}
	return parseEntity(t, e)
}

func parseEntity(t *testing.T, e *message.Entity) *part {
	t.Helper()
	typ, _, _ := e.Header.ContentType()
	p := &part{header: e.Header, typ: typ}
	if mr := e.MultipartReader(); mr != nil {
		for {
			child, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("next part: %v", err)
			}
			p.parts = append(p.parts, parseEntity(t, child))
		}
		return p
	}
	body, err := io.ReadAll(e.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	p.body = body
	return p
}

// checkWireFormat asserts CRLF line endings only and lines of at most 998
// octets (RFC 5322 §2.1.1, §2.3).
func checkWireFormat(t *testing.T, raw []byte) {
	t.Helper()
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i+1, len(line))
		}
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatal("message does not end with CRLF")
	}
}

var testDate = time.Date(2026, 11, 26, 9, 30, 0, 0, time.FixedZone("", 3600))

func baseMessage() *Message {
	return &Message{
		ID:         "01JDX3Q7V6Z9",
		From:       Address{Name: "Shop", Email: "orders@shop.example"},
		To:         []Address{{Email: "ann@example.org"}, {Name: "Bob", Email: "bob@example.net"}},
		Subject:    "Your order #1234",
		Text:       "Thanks for your order.\nSee you.",
		Date:       testDate,
		FeedbackID: "order:default:mailgate",
	}
}

func TestBuildStructure(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nfake image bytes")
	pdf := bytes.Repeat([]byte("%PDF-1.7 binary \x00\xff "), 100)
	tests := []struct {
		name     string
		edit     func(m *Message)
		tree     string
		leafBody []string // decoded body of each leaf, CRLF turned into LF
	}{
		{name: "text only", tree: "text/plain", leafBody: []string{"Thanks for your order.\nSee you."}},
		{name: "html only", edit: func(m *Message) { m.Text, m.HTML = "", "<p>Thanks</p>" },
			tree: "text/html", leafBody: []string{"<p>Thanks</p>"}},
		{name: "text and html", edit: func(m *Message) { m.HTML = "<p>Thanks</p>" },
			tree: "multipart/alternative[text/plain,text/html]", leafBody: []string{"Thanks for your order.\nSee you.", "<p>Thanks</p>"}},
		{name: "inline image", edit: func(m *Message) {
			m.HTML = `<img src="cid:logo@shop">`
			m.Attachments = []Attachment{{Filename: "logo.png", ContentType: "image/png", Content: png, ContentID: "logo@shop"}}
		}, tree: "multipart/related[multipart/alternative[text/plain,text/html],image/png]",
			leafBody: []string{"Thanks for your order.\nSee you.", `<img src="cid:logo@shop">`, string(png)}},
		{name: "attachment", edit: func(m *Message) {
			m.Attachments = []Attachment{{Filename: "invoice.pdf", ContentType: "application/pdf", Content: pdf}}
		}, tree: "multipart/mixed[text/plain,application/pdf]", leafBody: []string{"Thanks for your order.\nSee you.", string(pdf)}},
		{name: "everything", edit: func(m *Message) {
			m.HTML = `<img src="cid:logo">`
			m.Attachments = []Attachment{
				{Filename: "invoice.pdf", ContentType: "application/pdf", Content: pdf},
				{Filename: "logo.png", ContentType: "image/png", Content: png, ContentID: "<logo>"},
			}
		}, tree: "multipart/mixed[multipart/related[multipart/alternative[text/plain,text/html],image/png],application/pdf]",
			leafBody: []string{"Thanks for your order.\nSee you.", `<img src="cid:logo">`, string(png), string(pdf)}},
		{name: "inline without html is an attachment", edit: func(m *Message) {
			m.Attachments = []Attachment{{Filename: "logo.png", ContentType: "image/png", Content: png, ContentID: "logo"}}
		}, tree: "multipart/mixed[text/plain,image/png]", leafBody: []string{"Thanks for your order.\nSee you.", string(png)}},
		{name: "empty body", edit: func(m *Message) { m.Text = "" }, tree: "text/plain", leafBody: []string{""}},
		{name: "long lines", edit: func(m *Message) {
			m.Text = strings.Repeat("x", 3000) + "\n" + strings.Repeat("é", 1000)
			m.HTML = "<p>" + strings.Repeat("<b>y</b>", 500) + "</p>"
		}, tree: "multipart/alternative[text/plain,text/html]",
			leafBody: []string{strings.Repeat("x", 3000) + "\n" + strings.Repeat("é", 1000), "<p>" + strings.Repeat("<b>y</b>", 500) + "</p>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := baseMessage()
			if tt.edit != nil {
				tt.edit(m)
			}
			raw, err := Build(m)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			checkWireFormat(t, raw)
			root := parseMessage(t, raw)
			if got := root.tree(); got != tt.tree {
				t.Errorf("structure = %s, want %s", got, tt.tree)
			}
			var bodies []string
			for _, l := range root.leaves() {
				body := string(l.body)
				if strings.HasPrefix(l.typ, "text/") {
					// Line breaks are CRLF on the wire; a single-part
					// body gains a final one.
					body = strings.TrimSuffix(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
				}
				bodies = append(bodies, body)
			}
			if diff := cmp.Diff(tt.leafBody, bodies); diff != "" {
				t.Errorf("decoded bodies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildHeaders(t *testing.T) {
	m := baseMessage()
	m.From = Address{Name: "Bäckerei Müller", Email: "info@xn--bckerei-mller-6ib.example"}
	m.ReplyTo = &Address{Name: "Support", Email: "help@shop.example"}
	m.To = []Address{{Name: "Zoë", Email: "zoe@example.org"}}
	m.Cc = []Address{{Email: "cc@example.org"}}
	m.Subject = "Ihre Bestellung – Grüße 🎉 " + strings.Repeat("lang ", 40)
	m.Headers = map[string]string{"X-Order": "1234", "X-Note": "café", "List-Unsubscribe": "<https://shop.example/u/1>"}
	m.Attachments = []Attachment{{Filename: "Rechnung März.pdf", ContentType: "application/pdf", Content: []byte("x")}}
	raw, err := Build(m)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	checkWireFormat(t, raw)
	hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	// A Bcc field, not the letters: a random boundary or Message-ID may
	// hold "bcc".
	if lower := bytes.ToLower(hdr); bytes.HasPrefix(lower, []byte("bcc:")) || bytes.Contains(lower, []byte("\r\nbcc:")) {
		t.Error("message has a Bcc field")
	}
	for _, b := range hdr {
		if b >= 0x80 {
			t.Fatalf("header has a raw 8-bit octet: %q", hdr)
		}
	}
	got := decodedHeaders(t, raw)
	want := map[string]any{
		"Subject": m.Subject, "From": []string{"Bäckerei Müller <info@xn--bckerei-mller-6ib.example>"},
		"Reply-To": []string{"Support <help@shop.example>"}, "To": []string{"Zoë <zoe@example.org>"},
		"Cc": []string{" <cc@example.org>"}, "Message-ID": "<01JDX3Q7V6Z9@xn--bckerei-mller-6ib.example>",
		"X-Mailgate-ID": "01JDX3Q7V6Z9", "Feedback-ID": "order:default:mailgate",
		"X-Order": "1234", "X-Note": "café", "List-Unsubscribe": "<https://shop.example/u/1>",
		"MIME-Version": "1.0", "Date": true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	root := parseMessage(t, raw)
	att := mail.AttachmentHeader{Header: root.parts[1].header}
	if name, err := att.Filename(); err != nil || name != "Rechnung März.pdf" {
		t.Errorf("attachment filename = %q, %v; want Rechnung März.pdf", name, err)
	}
}

// decodedHeaders reads the mail header back with go-message and returns
// the fields TestBuildHeaders checks, decoded.
func decodedHeaders(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header
	text := func(k string) string {
		v, err := h.Text(k)
		if err != nil {
			t.Fatalf("header %s: %v", k, err)
		}
		return v
	}
	addrs := func(k string) []string {
		l, err := h.AddressList(k)
		if err != nil {
			t.Fatalf("header %s: %v", k, err)
		}
		var out []string
		for _, a := range l {
			out = append(out, a.Name+" <"+a.Address+">")
		}
		return out
	}
	date, _ := h.Date()
	return map[string]any{
		"Subject": text("Subject"), "From": addrs("From"), "Reply-To": addrs("Reply-To"),
		"To": addrs("To"), "Cc": addrs("Cc"), "Message-ID": h.Get("Message-ID"),
		"X-Mailgate-ID": h.Get("X-Mailgate-ID"), "Feedback-ID": h.Get("Feedback-ID"),
		"X-Order": text("X-Order"), "X-Note": text("X-Note"), "List-Unsubscribe": text("List-Unsubscribe"),
		"MIME-Version": h.Get("MIME-Version"), "Date": date.Equal(testDate),
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *Message)
		want string
	}{
		{name: "no id", edit: func(m *Message) { m.ID = "" }, want: "message id"},
		{name: "id with @", edit: func(m *Message) { m.ID = "a@b" }, want: "message id"},
		{name: "from without domain", edit: func(m *Message) { m.From.Email = "orders" }, want: "no domain"},
		{name: "no date", edit: func(m *Message) { m.Date = time.Time{} }, want: "date"},
		{name: "subject injection", edit: func(m *Message) { m.Subject = "hi\r\nBcc: x@evil.example" }, want: "CR, LF"},
		{name: "name injection", edit: func(m *Message) { m.To[0].Name = "a\nb" }, want: "CR, LF"},
		{name: "header value injection", edit: func(m *Message) { m.Headers = map[string]string{"X-A": "1\r\nBcc: x"} }, want: "CR, LF"},
		{name: "bad header name", edit: func(m *Message) { m.Headers = map[string]string{"X A": "1"} }, want: "field name"},
		{name: "filename injection", edit: func(m *Message) {
			m.Attachments = []Attachment{{Filename: "a\r\n.pdf", ContentType: "application/pdf"}}
		}, want: "CR, LF"},
		{name: "bad content type", edit: func(m *Message) {
			m.Attachments = []Attachment{{Filename: "a.pdf", ContentType: "pdf"}}
		}, want: "type/subtype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := baseMessage()
			tt.edit(m)
			_, err := Build(m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// counterBoundaries makes boundaries deterministic for golden files.
func counterBoundaries() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("mailgate-boundary-%d", n) }
}

func TestBuildGolden(t *testing.T) {
	m := baseMessage()
	m.Subject = "Ihre Bestellung – Grüße"
	m.HTML = `<p>Thanks! Grüße <img src="cid:logo"></p>` // quoted-printable; the text is 7bit
	m.Headers = map[string]string{"X-Order": "1234"}
	m.Attachments = []Attachment{
		{Filename: "logo.png", ContentType: "image/png", Content: []byte("\x89PNG fake"), ContentID: "logo"},
		{Filename: "Rechnung März.txt", ContentType: "text/plain; charset=utf-8", Content: []byte("Summe: 12 €\n")},
	}
	raw, err := Builder{Boundary: counterBoundaries()}.Build(m)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	path := filepath.Join("testdata", "golden_full.eml")
	if *update {
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(raw)); diff != "" {
		t.Errorf("built message differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestBuildTextTransferEncoding: text that is 7bit data goes as it is
// (CRLF line breaks); anything else is quoted-printable. Either way the
// decoded body is the text with CRLF line breaks and no line of the
// message is over 998 octets.
func TestBuildTextTransferEncoding(t *testing.T) {
	long := strings.Repeat("x", 998)
	tests := []struct {
		name, text, want string
	}{
		{"ascii with LF", "one\ntwo\n", "7bit"},
		{"ascii with CRLF", "one\r\ntwo", "7bit"},
		{"line of 998 octets", long + "\nend", "7bit"},
		{"line of 999 octets", long + "x\nend", "quoted-printable"},
		{"utf-8", "Grüße\n", "quoted-printable"},
		{"bare CR", "one\rtwo", "quoted-printable"},
		{"NUL", "one\x00two", "quoted-printable"},
		{"dot and From lines", ".\nFrom here\n..\n", "7bit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := baseMessage()
			m.Text = tt.text
			raw, err := Build(m)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			for _, line := range strings.Split(string(raw), "\r\n") {
				if len(line) > 998 || strings.ContainsAny(line, "\r\n") {
					t.Fatalf("line of %d octets or with a bare CR/LF: %.40q", len(line), line)
				}
			}
			e, err := message.Read(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("read built message: %v", err)
			}
			if got := e.Header.Get("Content-Transfer-Encoding"); got != tt.want {
				t.Errorf("Content-Transfer-Encoding %q, want %q", got, tt.want)
			}
			body, err := io.ReadAll(e.Body)
			if err != nil {
				t.Fatal(err)
			}
			// Every line break, a bare CR included, becomes CRLF.
			want := strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n").Replace(tt.text)
			if !strings.HasSuffix(want, "\r\n") {
				want += "\r\n" // Build ends the message with a line break
			}
			if diff := cmp.Diff(want, string(body)); diff != "" {
				t.Errorf("decoded body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSevenBit(t *testing.T) {
	long := strings.Repeat("a", maxLine)
	for _, tc := range []struct {
		name, text, want string
		ok               bool
	}{
		{"empty", "", "", true},
		{"LF becomes CRLF", "a\nb\n", "a\r\nb\r\n", true},
		{"CRLF kept", "a\r\nb", "a\r\nb", true},
		{"last line without a break", "a\nb", "a\r\nb", true},
		{"empty lines", "\n\r\n\n", "\r\n\r\n\r\n", true},
		{"longest line", long + "\n" + long, long + "\r\n" + long, true},
		{"line too long", long + "a\nb", "", false},
		{"last line too long", "b\n" + long + "a", "", false},
		{"CR alone", "a\rb", "", false},
		{"CR at the end", "a\r", "", false},
		{"CR CR LF", "a\r\r\nb", "", false},
		{"NUL", "a\x00b", "", false},
		{"8bit", "caf\xc3\xa9", "", false},
		{"8bit in a long line's first eight", "abcdef\xc3\xa9 and more text", "", false},
		{"8bit in a long line's tail", "sixteen octets!!\xe9", "", false},
		{"DEL is ASCII", "a\x7fb", "a\x7fb", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := sevenBit(tc.text)
			if ok != tc.ok || (ok && string(got) != tc.want) {
				t.Errorf("sevenBit(%q) = %q, %v; want %q, %v", tc.text, got, ok, tc.want, tc.ok)
			}
		})
	}
}
