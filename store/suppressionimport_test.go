package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestImportSuppressions: many entries in one transaction, counted as
// added or updated, the last of a repeated address winning, existing
// entries keeping their first created_at, and nothing written when the
// transaction fails.
func TestImportSuppressions(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "old@example.org",
			Reason: ReasonHardBounce}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		var list []Suppression
		for i := range 1203 { // more than two statements' worth
			list = append(list, Suppression{Email: fmt.Sprintf("u%04d@example.org", i), Reason: ReasonManual})
		}
		list = append(list,
			Suppression{Email: "OLD@example.org", Reason: ReasonManual, Note: "imported"},
			Suppression{Email: "u0001@example.org", Reason: ReasonComplaint, Note: "last wins"})
		res, err := s.ImportSuppressions(ctx, DefaultProjectID, list)
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		if res != (SuppressionImport{Added: 1203, Updated: 1}) {
			t.Errorf("import: %+v, want 1203 added and 1 updated", res)
		}
		old, err := s.GetSuppression(ctx, DefaultProjectID, "old@example.org")
		if err != nil {
			t.Fatal(err)
		}
		want := Suppression{ProjectID: DefaultProjectID, Email: "old@example.org", Reason: ReasonManual, Note: "imported", CreatedAt: t0}
		if diff := cmp.Diff(want, old); diff != "" {
			t.Errorf("the existing entry (-want +got):\n%s", diff)
		}
		u1, err := s.GetSuppression(ctx, DefaultProjectID, "u0001@example.org")
		if err != nil || u1.Reason != ReasonComplaint || u1.Note != "last wins" || !u1.CreatedAt.Equal(clk.Now()) {
			t.Errorf("the repeated address: %+v %v", u1, err)
		}

		// A bad entry in the middle fails the transaction: nothing of it stays.
		bad := []Suppression{{Email: "x1@example.org", Reason: ReasonManual}, {Email: "x2@example.org"}}
		if _, err := s.ImportSuppressions(ctx, DefaultProjectID, bad); err == nil {
			t.Fatal("an entry without a reason was imported")
		}
		if _, err := s.GetSuppression(ctx, DefaultProjectID, "x1@example.org"); err == nil {
			t.Error("a failed import left a row")
		}
	})
}

// TestSuppressionSearch: Search keeps the addresses containing it, in any
// case, LIKE's wildcards matching only themselves.
func TestSuppressionSearch(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		for _, e := range []string{"ann@example.org", "a_n@example.org", "bob%x@example.net", "carl@example.net"} {
			if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: e, Reason: ReasonManual}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
		}
		for q, want := range map[string][]string{
			"EXAMPLE.NET": {"carl@example.net", "bob%x@example.net"},
			"a_n":         {"a_n@example.org"},
			"%":           {"bob%x@example.net"},
			"nobody":      nil,
		} {
			list, _, err := s.ListSuppressions(ctx, DefaultProjectID, SuppressionFilter{Search: q})
			if err != nil {
				t.Fatalf("search %q: %v", q, err)
			}
			var got []string
			for _, sp := range list {
				got = append(got, sp.Email)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("search %q (-want +got):\n%s", q, diff)
			}
		}
	})
}
