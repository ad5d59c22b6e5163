package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestFeedbackEndpoints: configuring a provider again replaces its
// settings but keeps the URL token, and only under that token (the
// secret is sealed to it): a put naming another token, as a second
// concurrent creation does, writes nothing and says which token is kept.
// Lookups by token are per provider.
func TestFeedbackEndpoints(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ep, err := s.PutFeedbackEndpoint(ctx, FeedbackEndpoint{ID: "tok1", ProjectID: DefaultProjectID,
			Provider: "mailgun", SecretSealed: []byte("sealed-1")})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
		cur, err := s.PutFeedbackEndpoint(ctx, FeedbackEndpoint{ID: "tok2", ProjectID: DefaultProjectID,
			Provider: "mailgun", Public: "p", SecretSealed: []byte("sealed-for-tok2")})
		if !errors.Is(err, ErrFeedbackEndpointID) || cur.ID != "tok1" || string(cur.SecretSealed) != "sealed-1" {
			t.Fatalf("put under another id: %+v, %v; want ErrFeedbackEndpointID and tok1 unchanged", cur, err)
		}
		again, err := s.PutFeedbackEndpoint(ctx, FeedbackEndpoint{ID: "tok1", ProjectID: DefaultProjectID,
			Provider: "mailgun", Public: "p", SecretSealed: []byte("sealed-2")})
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != "tok1" || string(again.SecretSealed) != "sealed-2" || again.Public != "p" ||
			!again.CreatedAt.Equal(ep.CreatedAt) || !again.UpdatedAt.After(ep.UpdatedAt) {
			t.Errorf("after second put: %+v (first %+v)", again, ep)
		}
		got, err := s.FeedbackEndpointByID(ctx, "mailgun", "tok1")
		if err != nil || got.ProjectID != DefaultProjectID {
			t.Errorf("by id: %+v, %v", got, err)
		}
		if _, err := s.FeedbackEndpointByID(ctx, "ses", "tok1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("other provider: %v", err)
		}
		ses, err := s.PutFeedbackEndpoint(ctx, FeedbackEndpoint{ID: "tok3", ProjectID: DefaultProjectID,
			Provider: "ses", Public: "arn:aws:sns:eu-west-1:1:t"})
		if err != nil || ses.SecretSealed != nil {
			t.Errorf("ses: %+v, %v", ses, err)
		}
		if err := s.DeleteFeedbackEndpoint(ctx, DefaultProjectID, "mailgun"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ProjectFeedbackEndpoint(ctx, DefaultProjectID, "mailgun"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
		if err := s.DeleteFeedbackEndpoint(ctx, DefaultProjectID, "mailgun"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
	})
}
