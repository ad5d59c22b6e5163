package bounce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBigramFilterKeepsEveryRule checks that the bigram filter never
// hides a rule the text states: for every built-in rule, its own pattern
// (gaps filled with a few words), and for every corpus notice, the first
// rule of each reason is the same with and without the filter.
func TestBigramFilterKeepsEveryRule(t *testing.T) {
	tbl, err := builtinTable()
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{}
	for _, rs := range tbl.byReason {
		for _, r := range rs {
			texts = append(texts, "550 "+strings.ReplaceAll(r.Pattern, gapSep, " at example.org ")+".")
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, asciiLower(string(raw)))
	}
	for _, text := range texts {
		var set bigramSet
		set.add(text)
		for _, reason := range failureReasons {
			want, _ := tbl.first(reason, text, nil)
			got, _ := tbl.first(reason, text, &set)
			if got.ID != want.ID {
				t.Errorf("%s in %.60q: filtered %q, unfiltered %q", reason, text, got.ID, want.ID)
			}
		}
	}
}

// TestBigramFilterPhraseLists checks the command phrases and copy markers
// the same way: each is found in a text made of itself.
func TestBigramFilterPhraseLists(t *testing.T) {
	for _, p := range commandPhrases {
		if got := failedCommand("550 5.7.1 " + p.phrase + " x"); got != p.cmd {
			t.Errorf("failedCommand(%q) = %q, want %q", p.phrase, got, p.cmd)
		}
	}
	for _, mk := range copyMarkers {
		if got := originalMarker("Sorry.\n" + strings.ToUpper(mk) + "\n"); got != len("Sorry.\n") {
			t.Errorf("originalMarker(%q) = %d, want %d", mk, got, len("Sorry.\n"))
		}
	}
}
