package store

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newDomain registers name with one key in project.
func newDomain(t *testing.T, s *Store, projectID, name string) Domain {
	t.Helper()
	d, err := s.CreateDomain(context.Background(), Domain{ProjectID: projectID, Name: name,
		Keys: []DKIMKey{dkimKey("s1", "ed25519")}})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return d
}

// recordCheck is RecordDomainCheck failing the test on an error.
func recordCheck(t *testing.T, s *Store, projectID, name string, found bool) DomainCheckResult {
	t.Helper()
	d, err := s.GetDomain(context.Background(), projectID, name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RecordDomainCheck(context.Background(), d, found,
		[]CheckedRecord{{Name: "s1._domainkey." + name, Status: "found", OK: found}})
	if err != nil {
		t.Fatalf("record check of %s (found %v): %v", name, found, err)
	}
	return res
}

// domainEvents lists the project's domain events, oldest first, as
// "type domain status".
func domainEvents(t *testing.T, s *Store, projectID string) []string {
	t.Helper()
	evs, _, err := s.ListEvents(context.Background(), projectID, EventFilter{})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		var data domainEventData
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatalf("event data %s: %v", ev.Data, err)
		}
		if ev.MessageID != "" || ev.Recipient != "" || ev.Sequence != 0 || ev.Domain != data.Domain || len(data.Records) != 1 {
			t.Errorf("domain event %+v (data %s): want no message, recipient or sequence, its domain and records", ev, ev.Data)
		}
		out = append(out, ev.Type+" "+ev.Domain+" "+data.Status)
	}
	return out
}

// TestDomainCheckTransitions: pending stays pending while the record is
// missing; found makes it verified (verified_at, event); missing turns a
// verified domain failed (event), found again verified (event); a check
// that changes nothing writes no event; checked_at follows every check.
func TestDomainCheckTransitions(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		d := newDomain(t, s, DefaultProjectID, "shop.example")
		if d.Status != DomainPending || d.VerifiedAt != nil || d.CheckedAt != nil {
			t.Fatalf("new domain %+v, want pending, never verified or checked", d)
		}
		steps := []struct {
			found   bool
			want    string
			changed bool
		}{
			{false, DomainPending, false},
			{true, DomainVerified, true},
			{true, DomainVerified, false},
			{false, DomainFailed, true},
			{false, DomainFailed, false},
			{true, DomainVerified, true},
		}
		var verifiedAt time.Time
		for i, st := range steps {
			clk.Advance(time.Hour)
			res := recordCheck(t, s, DefaultProjectID, "shop.example", st.found)
			if res.Domain.Status != st.want || res.Changed != st.changed || res.Taken {
				t.Fatalf("step %d: found %v → %s changed %v taken %v, want %s changed %v", i, st.found,
					res.Domain.Status, res.Changed, res.Taken, st.want, st.changed)
			}
			if res.Domain.CheckedAt == nil || !res.Domain.CheckedAt.Equal(clk.Now()) {
				t.Errorf("step %d: checked_at %v, want %v", i, res.Domain.CheckedAt, clk.Now())
			}
			if st.changed && st.want == DomainVerified {
				verifiedAt = clk.Now()
			}
			if st.want == DomainVerified && (res.Domain.VerifiedAt == nil || !res.Domain.VerifiedAt.Equal(verifiedAt)) {
				t.Errorf("step %d: verified_at %v, want %v", i, res.Domain.VerifiedAt, verifiedAt)
			}
			if len(res.Domain.Keys) != 1 {
				t.Errorf("step %d: domain without its keys: %+v", i, res.Domain)
			}
		}
		want := []string{
			"domain.verified shop.example verified",
			"domain.verification_failed shop.example failed",
			"domain.verified shop.example verified",
		}
		if diff := cmp.Diff(want, domainEvents(t, s, DefaultProjectID)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if res, err := s.RecordDomainCheck(context.Background(), Domain{ID: "nowhere", ProjectID: DefaultProjectID,
			Name: "nowhere.example"}, true, nil); err != nil || !res.Stale {
			t.Errorf("check of an unknown domain = %+v, %v; want Stale", res, err)
		}
	})
}

// TestDomainVerifiedInOneProject: a name verified in one project is
// Taken in another (which stays pending and can still send nothing); once
// the first project's domain failed, the other may verify it.
func TestDomainVerifiedInOneProject(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		newDomain(t, s, DefaultProjectID, "shop.example")
		newDomain(t, s, other.ID, "shop.example")
		recordCheck(t, s, DefaultProjectID, "shop.example", true)

		res := recordCheck(t, s, other.ID, "shop.example", true)
		if !res.Taken || res.Changed || res.Domain.Status != DomainPending {
			t.Fatalf("verify of a name verified elsewhere = %+v, want taken, still pending", res)
		}
		sd, err := s.SenderDomain(ctx, other.ID, "shop.example")
		if err != nil || !sd.Registered || !sd.VerifiedElsewhere || sd.Status != DomainPending ||
			!cmp.Equal(sd.Selectors, []string{"s1"}) {
			t.Errorf("SenderDomain of the other project = %+v, %v; want registered, pending, verified elsewhere, selector s1", sd, err)
		}
		sd, err = s.SenderDomain(ctx, DefaultProjectID, "shop.example")
		if err != nil || !sd.Registered || sd.VerifiedElsewhere || sd.Status != DomainVerified || sd.Selectors != nil {
			t.Errorf("SenderDomain of the owner = %+v, %v; want registered, verified", sd, err)
		}
		if sd, err := s.SenderDomain(ctx, other.ID, "unknown.example"); err != nil || sd.Registered {
			t.Errorf("SenderDomain of an unregistered name = %+v, %v", sd, err)
		}

		clk.Advance(time.Hour)
		recordCheck(t, s, DefaultProjectID, "shop.example", false) // the owner's record is gone: failed
		if res := recordCheck(t, s, other.ID, "shop.example", true); !res.Changed || res.Domain.Status != DomainVerified {
			t.Fatalf("verify once the first project's domain failed = %+v, want verified", res)
		}
		if res := recordCheck(t, s, DefaultProjectID, "shop.example", true); !res.Taken || res.Domain.Status != DomainFailed {
			t.Errorf("the first project's record back = %+v, want taken, still failed", res)
		}
		names, err := s.VerifiedNames(ctx)
		if err != nil || !cmp.Equal(names, map[string]bool{"shop.example": true}) {
			t.Errorf("VerifiedNames = %v, %v", names, err)
		}
	})
}

// TestConcurrentVerifyOneWinner: two projects verifying one name at the
// same moment: exactly one becomes verified, the other is Taken.
func TestConcurrentVerifyOneWinner(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		var projects []string
		for _, name := range []string{"p1", "p2", "p3", "p4"} {
			p, err := s.CreateProject(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			projects = append(projects, p.ID)
		}
		for round := range 10 {
			name := "r" + string(rune('a'+round)) + ".example"
			for _, p := range projects {
				newDomain(t, s, p, name)
			}
			results := make([]DomainCheckResult, len(projects))
			errs := make([]error, len(projects))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, p := range projects {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					d, err := s.GetDomain(ctx, p, name)
					if err != nil {
						errs[i] = err
						return
					}
					results[i], errs[i] = s.RecordDomainCheck(ctx, d, true, nil)
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for i, res := range results {
				if errs[i] != nil {
					t.Fatalf("round %d project %d: %v", round, i, errs[i])
				}
				if res.Changed && res.Domain.Status == DomainVerified {
					won++
				} else if !res.Taken || res.Domain.Status != DomainPending {
					t.Errorf("round %d project %d: %+v, want taken and pending", round, i, res)
				}
			}
			if won != 1 {
				t.Errorf("round %d: %d projects verified %s, want exactly 1", round, won, name)
			}
		}
	})
}

// TestClaimDomainCheck: only verified and failed domains not checked
// since the cutoff are due; of two claims of one domain, one wins.
func TestClaimDomainCheck(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		verified := newDomain(t, s, DefaultProjectID, "verified.example")
		failed := newDomain(t, s, DefaultProjectID, "failed.example")
		newDomain(t, s, DefaultProjectID, "pending.example")
		recordCheck(t, s, DefaultProjectID, "verified.example", true)
		clk.Advance(time.Second)
		recordCheck(t, s, DefaultProjectID, "failed.example", true)
		recordCheck(t, s, DefaultProjectID, "failed.example", false)

		due, err := s.DomainsDue(ctx, clk.Now().Add(-time.Minute), 10)
		if err != nil || len(due) != 0 {
			t.Fatalf("due right after their checks = %v, %v; want none", due, err)
		}
		clk.Advance(time.Hour)
		before := clk.Now().Add(-time.Minute)
		due, err = s.DomainsDue(ctx, before, 10)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{verified.ID, failed.ID}, due); diff != "" {
			t.Fatalf("due (-want +got):\n%s", diff)
		}
		d, ok, err := s.ClaimDomainCheck(ctx, verified.ID, before)
		if err != nil || !ok || d.Name != "verified.example" || len(d.Keys) != 1 || !d.CheckedAt.Equal(clk.Now()) {
			t.Fatalf("first claim = %+v, %v, %v", d, ok, err)
		}
		if _, ok, err := s.ClaimDomainCheck(ctx, verified.ID, before); err != nil || ok {
			t.Errorf("second claim = %v, %v; want lost", ok, err)
		}
		if due, _ := s.DomainsDue(ctx, before, 10); !cmp.Equal(due, []string{failed.ID}) {
			t.Errorf("due after a claim = %v, want only %s", due, failed.ID)
		}
	})
}

// TestDomainCheckRecordedOnTheDomainChecked: a check's outcome lands only
// on the row it looked up, with the keys it looked up: a domain deleted
// and registered again, or given a new key, during the lookup keeps its
// status (the result is Stale, no event); a check of the row as it is now
// is recorded.
func TestDomainCheckRecordedOnTheDomainChecked(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		old := newDomain(t, s, DefaultProjectID, "shop.example")
		if err := s.DeleteDomain(ctx, DefaultProjectID, "shop.example"); err != nil {
			t.Fatal(err)
		}
		newDomain(t, s, DefaultProjectID, "shop.example")
		if res, err := s.RecordDomainCheck(ctx, old, true, nil); err != nil || !res.Stale || res.Changed {
			t.Errorf("check of a deleted row = %+v, %v; want Stale", res, err)
		}
		current, err := s.GetDomain(ctx, DefaultProjectID, "shop.example")
		if err != nil {
			t.Fatal(err)
		}
		if current.Status != DomainPending {
			t.Errorf("the new row is %s after a check of the deleted one, want pending", current.Status)
		}
		if _, err := s.AddDKIMKeys(ctx, DefaultProjectID, "shop.example", []DKIMKey{dkimKey("s2", "rsa")}); err != nil {
			t.Fatal(err)
		}
		if res, err := s.RecordDomainCheck(ctx, current, true, nil); err != nil || !res.Stale || res.Changed {
			t.Errorf("check of the keys before a rotation = %+v, %v; want Stale", res, err)
		}
		if got := domainEvents(t, s, DefaultProjectID); len(got) != 0 {
			t.Errorf("stale checks wrote events %q", got)
		}
		if res := recordCheck(t, s, DefaultProjectID, "shop.example", true); !res.Changed ||
			res.Domain.Status != DomainVerified {
			t.Errorf("check of the row as it is = %+v, want verified", res)
		}
	})
}
