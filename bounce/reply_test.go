package bounce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// answeredID is the Message-ID of "our" message that the reply fixtures
// answer.
const answeredID = "20250303101500.4f2a9c@mailgate.example.com"

// fixtures returns the .eml files of a testdata directory.
func fixtures(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	return files
}

// parseFile parses one fixture.
func parseFile(t *testing.T, path string) *Report {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return r
}

// expectedText reads the sibling .txt of a fixture.
func expectedText(t *testing.T, path string) string {
	t.Helper()
	want, err := os.ReadFile(strings.TrimSuffix(path, ".eml") + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(want))
}

// TestReplies checks replies written the way Gmail, Outlook (desktop and
// web), Apple Mail, Thunderbird and mobile clients quote, in English,
// German and French: kind, the answered Message-ID and the stripped text.
func TestReplies(t *testing.T) {
	for _, path := range fixtures(t, "replies") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r := parseFile(t, path)
			if r.Kind != KindReply {
				t.Fatalf("kind = %q, want reply", r.Kind)
			}
			if r.Refs.InReplyTo != answeredID {
				t.Errorf("in_reply_to = %q, want %q", r.Refs.InReplyTo, answeredID)
			}
			if diff := cmp.Diff(expectedText(t, path), r.Reply.Text); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
			if r.Reply.From == "" || r.Reply.Subject == "" {
				t.Errorf("reply from/subject empty: %+v", r.Reply)
			}
		})
	}
}

// TestAutoReplies checks out-of-office answers in several languages,
// recognised by header, by subject or by an empty Return-Path.
func TestAutoReplies(t *testing.T) {
	for _, path := range fixtures(t, "autoreplies") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r := parseFile(t, path)
			if r.Kind != KindAutoReply {
				t.Fatalf("kind = %q, want auto_reply", r.Kind)
			}
			if len(r.Results) != 1 || r.Results[0].Reason != ReasonVacation || r.Results[0].Hard {
				t.Errorf("results = %+v, want one soft vacation result", r.Results)
			}
			if diff := cmp.Diff(expectedText(t, path), r.Reply.Text); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnrelated checks that newsletters, spam, forwards and new messages
// are not taken for replies or reports.
func TestUnrelated(t *testing.T) {
	for _, path := range fixtures(t, "unrelated") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			r := parseFile(t, path)
			if r.Kind != KindUnknown || len(r.Results) != 0 || r.Reply != nil {
				t.Errorf("got kind %q, %d results, reply %v; want unknown and nothing", r.Kind, len(r.Results), r.Reply)
			}
		})
	}
}
