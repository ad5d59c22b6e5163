package bounce

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// dsnHead is a minimal RFC 3464 report, used as the first part of the
// hostile messages so that the tests can check the report survives.
const dsnHead = "From: MAILER-DAEMON@mx.example.net\r\nTo: b+tok@bounces.example.com\r\n" +
	"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"top\"\r\n\r\n" +
	"--top\r\nContent-Type: text/plain\r\n\r\nThe mail system\r\n\r\n" +
	"--top\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n" +
	"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
	"Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: User unknown\r\n\r\n"

// nested returns a message nested depth multiparts deep.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

// manyParts returns a report followed by n tiny parts.
func manyParts(n int) []byte {
	var b bytes.Buffer
	b.WriteString(dsnHead)
	for i := 0; i < n; i++ {
		b.WriteString("--top\r\nContent-Type: text/plain\r\n\r\nx\r\n")
	}
	b.WriteString("--top--\r\n")
	return b.Bytes()
}

// huge returns a report followed by an attachment of size bytes.
func huge(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 1024)
	b.WriteString(dsnHead)
	b.WriteString("--top\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJD", 19) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	b.WriteString("--top--\r\n")
	return b.Bytes()
}

// TestHostileLimits checks that deep nesting, huge part counts, bad
// charsets and oversized messages are parsed within the limits, quickly,
// without a panic, and that a report in front survives.
func TestHostileLimits(t *testing.T) {
	tests := []struct {
		name      string
		raw       []byte
		lim       Limits
		truncated bool
		maxParts  int
		wantKind  string
	}{
		{"nesting 1000", nested(1000), Limits{}, true, DefaultMaxDepth + 2, KindUnknown},
		{"nesting within limit", nested(10), Limits{}, false, 12, KindUnknown},
		{"100000 parts", manyParts(100000), Limits{}, true, DefaultMaxParts + 1, KindBounce},
		{"100000 parts, low limit", manyParts(100000), Limits{MaxParts: 10}, true, 11, KindBounce},
		{"50 MB", huge(50 << 20), Limits{}, false, 10, KindBounce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			lim := tt.lim.withDefaults()
			raw := tt.raw[:min(int64(len(tt.raw)), lim.MaxBytes)]
			tr, err := readTree(raw, lim)
			if err != nil {
				t.Fatal(err)
			}
			if tr.truncated != tt.truncated || tr.count > tt.maxParts {
				t.Errorf("truncated = %v, count = %d; want %v, <= %d", tr.truncated, tr.count, tt.truncated, tt.maxParts)
			}
			r, err := New(tt.lim).Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tt.wantKind {
				t.Errorf("kind = %q, want %q", r.Kind, tt.wantKind)
			}
			if tt.wantKind == KindBounce && (len(r.Results) != 1 || r.Results[0].Recipient != "gone@example.org" || !r.Results[0].Hard) {
				t.Errorf("results = %+v, want the hard bounce of gone@example.org", r.Results)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestHostileMemory checks that a 50 MB message costs memory in proportion
// to MaxBytes, not to its size: the tail past MaxBytes is never read.
func TestHostileMemory(t *testing.T) {
	raw := huge(50 << 20)
	p := New(Limits{MaxBytes: 1 << 20})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := p.Parse(raw)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindBounce {
		t.Errorf("kind = %q, want bounce", r.Kind)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("allocated %d bytes for a 1 MiB limit", alloc)
	}
}

// TestHostileEncodings checks that unknown charsets, broken transfer
// encodings and malformed headers still yield a report.
func TestHostileEncodings(t *testing.T) {
	tests := []struct {
		name, raw, wantKind string
	}{
		{"unknown charset", "From: a@example.com\r\nSubject: hi\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\nhello\r\n", KindUnknown},
		{"utf-7 subject", "From: a@example.com\r\nSubject: =?utf-7?Q?+AGEAYgBj-?=\r\n\r\nhello\r\n", KindUnknown},
		{"broken base64", "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n", KindUnknown},
		{"unknown encoding", "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644\r\n", KindUnknown},
		{"broken quoted-printable", "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=\r\n", KindUnknown},
		{"no boundary", "From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n", KindUnknown},
		{"unterminated multipart", "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhello", KindUnknown},
		{"bad charset in report", strings.Replace(dsnHead, "Content-Type: text/plain", "Content-Type: text/plain; charset=bogus", 1) + "--top--\r\n", KindBounce},
		{"binary junk", "From: a@example.com\r\n\r\n\x00\xff\xfe<div class=\"gmail_quote\"><blockquote type=\"cite\">", KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tt.wantKind {
				t.Errorf("kind = %q, want %q", r.Kind, tt.wantKind)
			}
		})
	}
}

// TestParseErrors checks the inputs Parse refuses.
func TestParseErrors(t *testing.T) {
	for _, raw := range []string{"", "  \r\n", " leading continuation\r\n\r\nbody"} {
		if r, err := Parse([]byte(raw)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", raw, r)
		}
	}
}
