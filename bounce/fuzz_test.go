package bounce

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// addSeeds adds every fixture under testdata as a fuzz seed.
func addSeeds(f *testing.F) {
	f.Helper()
	for _, dir := range []string{"corpus", "replies", "autoreplies", "unrelated", "reports"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.eml"))
		for _, name := range files {
			raw, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
}

// FuzzParse checks that no input panics and that every report is
// well-formed: a known kind, results never nil, valid JSON.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Add(nested(60))
	f.Add(manyParts(50))
	p := New(Limits{MaxBytes: 1 << 20, MaxParts: 200})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := p.Parse(raw)
		if err != nil {
			return
		}
		switch r.Kind {
		case KindBounce, KindDelayed, KindDelivered, KindComplaint, KindAutoReply, KindReply, KindUnknown:
		default:
			t.Fatalf("unknown kind %q", r.Kind)
		}
		if r.Results == nil {
			t.Fatal("nil results")
		}
		for _, x := range r.Results {
			if x.Status != "" && findStatus(x.Status) != x.Status {
				t.Fatalf("malformed status %q", x.Status)
			}
		}
		if _, err := r.JSON(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseDSNFields checks the delivery-status field parser.
func FuzzParseDSNFields(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "corpus", "*.eml"))
	for _, name := range files {
		raw, _ := os.ReadFile(name)
		if i := strings.Index(string(raw), "Reporting-MTA:"); i >= 0 {
			f.Add(raw[i:min(len(raw), i+2000)])
		}
	}
	f.Add([]byte("Final-Recipient: utf-8; \\x{4E2D}@example.com\nAction: failed\nStatus: 5.1.1\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		d := parseDSNFields(body)
		res, local := dsnResults(d)
		if len(res) != len(d.recipients) || len(local) != len(res) {
			t.Fatalf("%d results, %d flags for %d blocks", len(res), len(local), len(d.recipients))
		}
		for _, f := range d.recipients {
			_, final := f["final-recipient"]
			_, orig := f["original-recipient"]
			if !final && !orig && f["action"] == "" && f["status"] == "" {
				t.Fatalf("recipient block without a recipient field, an action or a status: %v", f)
			}
		}
	})
}

// FuzzStripReply checks that stripping never grows the text and keeps it
// valid UTF-8 when the input is.
func FuzzStripReply(f *testing.F) {
	for _, dir := range []string{"replies", "autoreplies"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.eml"))
		for _, name := range files {
			raw, _ := os.ReadFile(name)
			f.Add(string(raw))
		}
	}
	f.Add("Hi\n\nOn Mon, 1 Jan 2024 at 10:00, A <a@b.c> wrote:\n> quoted\n")
	f.Fuzz(func(t *testing.T, text string) {
		out := StripReply(text)
		if len(out) > len(text) {
			t.Fatalf("stripped text grew: %d > %d", len(out), len(text))
		}
		if utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 out of valid input")
		}
	})
}

// FuzzHTMLToText checks the tag stripper and the quote remover.
func FuzzHTMLToText(f *testing.F) {
	for _, dir := range []string{"replies", "corpus"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*html*.eml"))
		for _, name := range files {
			raw, _ := os.ReadFile(name)
			f.Add(string(raw))
		}
	}
	f.Add(`<div class="gmail_quote"><div><blockquote type="cite">x</div>`)
	f.Fuzz(func(t *testing.T, s string) {
		out := htmlToText(dropHTMLQuotes(s))
		if strings.Contains(out, "<script") && !strings.Contains(s, "&lt;script") {
			t.Fatalf("script tag survived: %q", out)
		}
	})
}

// FuzzStatusCodes checks the status and reply code scanners against their
// own definitions.
func FuzzStatusCodes(f *testing.F) {
	for _, s := range []string{"550 5.1.1 user unknown", "v4.6.1", "192.0.2.1:25", "said: 452-4.2.2 full", "250 2.1.5 ok 451 4.3.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if st := findStatus(s); st != "" && (!strings.Contains(s, st) || len(st) < 5 || st[1] != '.') {
			t.Fatalf("findStatus(%q) = %q", s, st)
		}
		if c := findReplyCode(s); c != 0 && (c < 200 || c > 559) {
			t.Fatalf("findReplyCode(%q) = %d", s, c)
		}
	})
}

// FuzzRepairFolding checks that the folding repair only adds indentation.
func FuzzRepairFolding(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/mixed;\nboundary=\"x\"\n\nbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out := repairFolding(raw)
		if strings.ReplaceAll(string(out), "\t", "") != strings.ReplaceAll(string(raw), "\t", "") {
			t.Fatalf("repair changed more than indentation")
		}
	})
}

// FuzzJSON checks that a report round-trips through its JSON form.
func FuzzJSON(f *testing.F) {
	f.Add("kijitora@example.jp", "5.1.1", 550)
	f.Fuzz(func(t *testing.T, rcpt, status string, code int) {
		r := &Report{Kind: KindBounce, Results: []Result{{Recipient: rcpt, Status: status, ReplyCode: code}}}
		b, err := r.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Results) != 1 || back.Results[0].ReplyCode != code {
			t.Fatalf("round trip lost data: %s", b)
		}
	})
}
