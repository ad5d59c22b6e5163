package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// claimChecker claims keys of the API key k1 and compares the states,
// tokens aside (a fresh claim must have one).
type claimChecker struct {
	t *testing.T
	s *Store
}

func (c claimChecker) claim(key, hash string) IdempotencyState {
	c.t.Helper()
	st, err := c.s.ClaimIdempotencyKey(context.Background(), "k1", key, []byte(hash), time.Minute)
	if err != nil {
		c.t.Fatalf("claim %s: %v", key, err)
	}
	if st.Fresh != (st.Token != "") {
		c.t.Errorf("claim %s = %+v: a fresh claim has a token, and only it", key, st)
	}
	return st
}

func (c claimChecker) check(name string, want, got IdempotencyState) {
	c.t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(IdempotencyState{}, "Token")); diff != "" {
		c.t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		c := claimChecker{t, s}
		c.check("first claim", IdempotencyState{Fresh: true}, c.claim("a", "h1"))
		c.check("while in flight", IdempotencyState{InFlight: true, RequestHash: []byte("h1")}, c.claim("a", "h2"))
		other, err := s.ClaimIdempotencyKey(ctx, "k2", "a", []byte("h9"), time.Minute)
		if err != nil || !other.Fresh {
			t.Errorf("same key under another API key = %+v, %v; want fresh", other, err)
		}

		clk.Advance(time.Minute)
		taken := c.claim("a", "h2")
		c.check("stale takeover", IdempotencyState{Fresh: true}, taken)
		c.check("after takeover", IdempotencyState{InFlight: true, RequestHash: []byte("h2")}, c.claim("a", "h3"))

		res := &IdempotencyResult{KeyID: "k1", Key: "a", Token: taken.Token, Respond: fixed(202, `{"id":"m"}`)}
		if _, err := s.CreateMessages(ctx, nil, res); err != nil {
			t.Fatalf("finish: %v", err)
		}
		done := IdempotencyState{RequestHash: []byte("h2"), ResponseCode: 202, ResponseBody: []byte(`{"id":"m"}`)}
		c.check("done", done, c.claim("a", "h3"))
		clk.Advance(time.Hour)
		c.check("done is not stale", done, c.claim("a", "h3"))

		b := c.claim("b", "h1")
		c.check("release claim", IdempotencyState{Fresh: true}, b)
		if err := s.ReleaseIdempotencyKey(ctx, "k1", "b", b.Token); err != nil {
			t.Fatalf("release: %v", err)
		}
		c.check("after release", IdempotencyState{Fresh: true}, c.claim("b", "h2"))
		if err := s.ReleaseIdempotencyKey(ctx, "k1", "a", taken.Token); err != nil {
			t.Fatalf("release done key: %v", err)
		}
		c.check("release keeps done keys", done, c.claim("a", "h3"))

		clk.Advance(IdempotencyTTL)
		c.check("expired done key is absent", IdempotencyState{Fresh: true}, c.claim("a", "h4"))
		n, err := s.ExpireIdempotencyKeys(ctx, clk.Now().Add(-time.Second), 1000)
		if err != nil || n != 2 {
			t.Errorf("expire = %d, %v; want 2 (k1/b, k2/a)", n, err)
		}
		c.check("purge keeps newer keys", IdempotencyState{InFlight: true, RequestHash: []byte("h4")}, c.claim("a", "h5"))
	})
}

// TestStaleClaimHasNoOwner: request A's claim goes stale and B takes it
// over. A can then neither finish it (its create writes nothing and
// returns ErrIdempotencyLost) nor release it; C, arriving while B runs,
// sees the key in flight; B finishes, and a replay returns B's answer.
func TestStaleClaimHasNoOwner(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		c := claimChecker{t, s}
		a := c.claim("k", "h")
		clk.Advance(time.Minute)
		b := c.claim("k", "h")
		if !b.Fresh || b.Token == a.Token {
			t.Fatalf("takeover = %+v, want fresh with a new token", b)
		}
		for _, commit := range []struct {
			name string
			run  func(NewMessage, *IdempotencyResult) error
		}{
			{"CreateMessages", func(m NewMessage, r *IdempotencyResult) error {
				_, err := s.CreateMessages(ctx, []NewMessage{m}, r)
				return err
			}},
			{"CommitMessage", func(m NewMessage, r *IdempotencyResult) error {
				_, err := s.CommitMessage(ctx, m, r)
				return err
			}},
		} {
			finishA := &IdempotencyResult{KeyID: "k1", Key: "k", Token: a.Token, Respond: fixed(202, "A")}
			err := commit.run(newMsg("from-a-"+commit.name, clk.Now(), "a@example.org"), finishA)
			if !errors.Is(err, ErrIdempotencyLost) {
				t.Errorf("A's %s = %v, want ErrIdempotencyLost", commit.name, err)
			}
			if _, err := s.GetMessage(ctx, DefaultProjectID, "from-a-"+commit.name); !errors.Is(err, ErrNotFound) {
				t.Errorf("A's %s wrote its message: %v", commit.name, err)
			}
		}
		if err := s.ReleaseIdempotencyKey(ctx, "k1", "k", a.Token); err != nil {
			t.Fatalf("A's release: %v", err)
		}
		c.check("C while B runs", IdempotencyState{InFlight: true, RequestHash: []byte("h")}, c.claim("k", "h"))
		finishB := &IdempotencyResult{KeyID: "k1", Key: "k", Token: b.Token, Respond: fixed(202, "B")}
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("from-b", clk.Now(), "b@example.org")}, finishB); err != nil {
			t.Fatalf("B's create: %v", err)
		}
		c.check("replay", IdempotencyState{RequestHash: []byte("h"), ResponseCode: 202, ResponseBody: []byte("B")}, c.claim("k", "h"))
	})
}
