package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIdempotencyKeys(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		claim := func(key, hash string) IdempotencyState {
			t.Helper()
			st, err := s.ClaimIdempotencyKey(ctx, "k1", key, []byte(hash), time.Minute)
			if err != nil {
				t.Fatalf("claim %s: %v", key, err)
			}
			return st
		}
		check := func(name string, want, got IdempotencyState) {
			t.Helper()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}
		check("first claim", IdempotencyState{Fresh: true}, claim("a", "h1"))
		check("while in flight", IdempotencyState{InFlight: true, RequestHash: []byte("h1")}, claim("a", "h2"))
		other, err := s.ClaimIdempotencyKey(ctx, "k2", "a", []byte("h9"), time.Minute)
		if err != nil || !other.Fresh {
			t.Errorf("same key under another API key = %+v, %v; want fresh", other, err)
		}

		clk.Advance(time.Minute)
		check("stale takeover", IdempotencyState{Fresh: true}, claim("a", "h2"))
		check("after takeover", IdempotencyState{InFlight: true, RequestHash: []byte("h2")}, claim("a", "h3"))

		res := &IdempotencyResult{KeyID: "k1", Key: "a", ResponseCode: 202, ResponseBody: []byte(`{"id":"m"}`)}
		if err := s.CreateMessages(ctx, nil, res); err != nil {
			t.Fatalf("finish: %v", err)
		}
		done := IdempotencyState{RequestHash: []byte("h2"), ResponseCode: 202, ResponseBody: []byte(`{"id":"m"}`)}
		check("done", done, claim("a", "h3"))
		clk.Advance(time.Hour)
		check("done is not stale", done, claim("a", "h3"))

		check("release claim", IdempotencyState{Fresh: true}, claim("b", "h1"))
		if err := s.ReleaseIdempotencyKey(ctx, "k1", "b"); err != nil {
			t.Fatalf("release: %v", err)
		}
		check("after release", IdempotencyState{Fresh: true}, claim("b", "h2"))
		if err := s.ReleaseIdempotencyKey(ctx, "k1", "a"); err != nil {
			t.Fatalf("release done key: %v", err)
		}
		check("release keeps done keys", done, claim("a", "h3"))

		clk.Advance(IdempotencyTTL)
		check("expired done key is absent", IdempotencyState{Fresh: true}, claim("a", "h4"))
		n, err := s.PurgeIdempotencyKeys(ctx, clk.Now().Add(-time.Second))
		if err != nil || n != 2 {
			t.Errorf("purge = %d, %v; want 2 (k1/b, k2/a)", n, err)
		}
		check("purge keeps newer keys", IdempotencyState{InFlight: true, RequestHash: []byte("h4")}, claim("a", "h5"))
	})
}
