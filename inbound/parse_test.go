package inbound

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMessageIDPart(t *testing.T) {
	cases := []struct {
		ref, want string
		ok        bool
	}{
		{"0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65@shop.example", "0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", true},
		{"<0193A6F2-5C1E-7B3A-9D4F-2E8B1C0A7F65@shop.example>", "0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", true},
		{"0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", "0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65", true},
		{"20261126090005.4F2A9C@mx.example.org", "", false},
		{"@shop.example", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			got, ok := messageIDPart(tc.ref)
			if got != tc.want || ok != tc.ok {
				t.Errorf("messageIDPart(%q) = %q, %v; want %q, %v", tc.ref, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestAttachments(t *testing.T) {
	reply, err := os.ReadFile(filepath.Join("testdata", "reply.eml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		raw  string
		want []Attachment
	}{
		{"reply with a pdf", string(reply), []Attachment{{Filename: "address.pdf", ContentType: "application/pdf", Size: 54}}},
		{"plain text", "Subject: hi\r\n\r\nhello\r\n", nil},
		{"inline image with a name", "Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\n" +
			"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--b\r\nContent-Type: image/png; name=\"=?utf-8?q?logo_=C3=A9.png?=\"\r\n" +
			"Content-Disposition: inline\r\n\r\nPNGDATA\r\n--b--\r\n",
			[]Attachment{{Filename: "logo é.png", ContentType: "image/png", Size: 7}}},
		{"garbage", "\x00\x01not a message", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, attachments([]byte(tc.raw))); diff != "" {
				t.Errorf("attachments (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAttachmentsHostile: deep nesting and many parts cost bounded work.
func TestAttachmentsHostile(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i%7) + "\r\n\r\n--b" + strings.Repeat("x", i%7) + "\r\n")
	}
	if got := attachments([]byte(b.String())); len(got) != 0 {
		t.Errorf("deep nesting: %v", got)
	}
	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 100000 {
		b.WriteString("--b\r\nContent-Disposition: attachment; filename=a\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	if got := len(attachments([]byte(b.String()))); got > maxAttachParts {
		t.Errorf("100,000 parts: %d attachments listed, want at most %d", got, maxAttachParts)
	}
}

func FuzzAttachments(f *testing.F) {
	for _, name := range []string{"reply.eml", "arf-complaint.eml", "dsn-userunknown.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, a := range attachments(raw) {
			if a.Size < 0 || a.ContentType == "" {
				t.Errorf("bad attachment %+v", a)
			}
		}
	})
}

func FuzzMessageIDPart(f *testing.F) {
	f.Add("<0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65@shop.example>")
	f.Add("x@y")
	f.Fuzz(func(t *testing.T, ref string) {
		if id, ok := messageIDPart(ref); ok && len(id) != 36 {
			t.Errorf("messageIDPart(%q) = %q", ref, id)
		}
	})
}
