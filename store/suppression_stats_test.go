package store

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCountSuppressionsByReason(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		empty, err := s.CountSuppressionsByReason(ctx)
		if err != nil {
			t.Fatalf("count empty: %v", err)
		}
		if diff := cmp.Diff(map[string]int64{}, empty); diff != "" {
			t.Errorf("empty (-want +got):\n%s", diff)
		}
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatalf("create project: %v", err)
		}
		for _, sp := range []Suppression{
			{ProjectID: DefaultProjectID, Email: "a@example.org", Reason: ReasonHardBounce},
			{ProjectID: DefaultProjectID, Email: "b@example.org", Reason: ReasonHardBounce},
			{ProjectID: other.ID, Email: "a@example.org", Reason: ReasonHardBounce},
			{ProjectID: other.ID, Email: "c@example.org", Reason: ReasonComplaint},
			{ProjectID: DefaultProjectID, Email: "d@example.org", Reason: ReasonManual},
		} {
			if _, err := s.UpsertSuppression(ctx, sp); err != nil {
				t.Fatalf("upsert %+v: %v", sp, err)
			}
		}
		got, err := s.CountSuppressionsByReason(ctx)
		if err != nil {
			t.Fatalf("count: %v", err)
		}
		want := map[string]int64{ReasonHardBounce: 3, ReasonComplaint: 1, ReasonManual: 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("counts (-want +got):\n%s", diff)
		}
	})
}
