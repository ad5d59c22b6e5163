package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSuppressions(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatalf("create project: %v", err)
		}
		t0 := clk.Now()
		first, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: " Ann@Example.ORG ",
			Reason: ReasonHardBounce, Note: "5.1.1"})
		if err != nil {
			t.Fatalf("upsert: %v", err)
		}
		want := Suppression{ProjectID: DefaultProjectID, Email: "ann@example.org", Reason: ReasonHardBounce,
			Note: "5.1.1", CreatedAt: t0}
		if diff := cmp.Diff(want, first); diff != "" {
			t.Errorf("first upsert (-want +got):\n%s", diff)
		}
		clk.Advance(time.Hour)
		second, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "ANN@example.org",
			Reason: ReasonComplaint})
		if err != nil {
			t.Fatalf("upsert again: %v", err)
		}
		want.Reason, want.Note = ReasonComplaint, ""
		if diff := cmp.Diff(want, second); diff != "" {
			t.Errorf("second upsert keeps created_at (-want +got):\n%s", diff)
		}
		got, err := s.GetSuppression(ctx, DefaultProjectID, "aNN@example.org")
		if err != nil || !cmp.Equal(want, got) {
			t.Errorf("get = %+v, %v; want %+v", got, err, want)
		}
		among, err := suppressedAmong(ctx, s.rdb, DefaultProjectID, []string{"Ann@EXAMPLE.org", "bob@example.org"})
		if err != nil {
			t.Fatalf("among: %v", err)
		}
		if diff := cmp.Diff(map[string]bool{"ann@example.org": true}, among); diff != "" {
			t.Errorf("suppressedAmong (-want +got):\n%s", diff)
		}
		among, err = suppressedAmong(ctx, s.rdb, other.ID, []string{"ann@example.org"})
		if err != nil || len(among) != 0 {
			t.Errorf("other project among = %v, %v; want none", among, err)
		}
		if _, err := s.GetSuppression(ctx, other.ID, "ann@example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("other project get = %v, want ErrNotFound", err)
		}
		if err := s.DeleteSuppression(ctx, DefaultProjectID, "ANN@example.org"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := s.DeleteSuppression(ctx, DefaultProjectID, "ann@example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete twice = %v, want ErrNotFound", err)
		}
	})
}

func TestListSuppressions(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		var want, wantManual []string
		for i := range 23 {
			reason := ReasonHardBounce
			if i%4 == 0 {
				reason = ReasonManual
			}
			email := fmt.Sprintf("u%02d@example.org", i)
			if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: email, Reason: reason}); err != nil {
				t.Fatalf("upsert: %v", err)
			}
			if i%2 == 1 {
				clk.Advance(time.Second) // pairs share a created_at
			}
			want = append([]string{email}, want...)
			if reason == ReasonManual {
				wantManual = append([]string{email}, wantManual...)
			}
		}
		for _, tt := range []struct {
			name string
			f    SuppressionFilter
			want []string
		}{
			{"all", SuppressionFilter{Page: Page{Limit: 5}}, want},
			{"manual", SuppressionFilter{Reason: ReasonManual, Page: Page{Limit: 2}}, wantManual},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var got []string
				f := tt.f
				for range 30 {
					page, next, err := s.ListSuppressions(ctx, DefaultProjectID, f)
					if err != nil {
						t.Fatalf("list: %v", err)
					}
					for _, sp := range page {
						got = append(got, sp.Email)
					}
					if next == "" {
						break
					}
					f.Cursor = next
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("emails (-want +got):\n%s", diff)
				}
			})
		}
	})
}
