package migrations

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDialectsMatch checks that every migration exists for both dialects
// and carries goose Up and Down sections.
func TestDialectsMatch(t *testing.T) {
	names := map[string][]string{}
	for _, dialect := range []string{"postgres", "sqlite"} {
		entries, err := fs.ReadDir(FS, dialect)
		if err != nil {
			t.Fatalf("read %s: %v", dialect, err)
		}
		for _, e := range entries {
			names[dialect] = append(names[dialect], e.Name())
			t.Run(dialect+"/"+e.Name(), func(t *testing.T) {
				b, err := fs.ReadFile(FS, dialect+"/"+e.Name())
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				for _, mark := range []string{"-- +goose Up", "-- +goose Down"} {
					if !strings.Contains(string(b), mark) {
						t.Errorf("missing %q", mark)
					}
				}
			})
		}
	}
	if len(names["postgres"]) == 0 {
		t.Fatal("no migrations embedded")
	}
	if diff := cmp.Diff(names["postgres"], names["sqlite"]); diff != "" {
		t.Errorf("migration files differ between dialects (-postgres +sqlite):\n%s", diff)
	}
}
