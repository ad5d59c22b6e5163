package bounce

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden .json files of testdata/reports")

// TestReportGolden parses the hand-written reports of testdata/reports and
// compares each with its golden JSON (reviewed by hand; -update rewrites
// them).
func TestReportGolden(t *testing.T) {
	for _, path := range fixtures(t, "reports") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			got := parseFile(t, path)
			golden := strings.TrimSuffix(path, ".eml") + ".json"
			if *update {
				b, err := got.JSON()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			var want Report
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJSON checks the JSON form: results never null, hard always present.
func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Report
		want string
	}{
		{"empty", Report{Kind: KindUnknown}, `{"kind":"unknown","results":[],"refs":{}}`},
		{"soft", Report{Kind: KindBounce, Results: []Result{{Recipient: "a@b.c", Status: "5.2.2", Reason: ReasonMailboxFull}}},
			`{"kind":"bounce","results":[{"recipient":"a@b.c","status":"5.2.2","reason":"mailboxfull","hard":false}],"refs":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.r.JSON()
			if err != nil {
				t.Fatal(err)
			}
			var compact strings.Builder
			for _, line := range strings.Split(string(b), "\n") {
				compact.WriteString(strings.TrimSpace(line))
			}
			got := strings.ReplaceAll(compact.String(), `": `, `":`)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}
