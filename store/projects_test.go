package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestProjects(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		def, err := s.ProjectByName(ctx, DefaultProjectName)
		if err != nil {
			t.Fatalf("default project: %v", err)
		}
		if def.ID != DefaultProjectID {
			t.Errorf("default project id = %q, want %q", def.ID, DefaultProjectID)
		}
		// The default project is dated by the real clock when migrations
		// run; shop comes an hour after it whatever today's date is.
		clk.Advance(def.CreatedAt.Add(time.Hour).Sub(clk.Now()))
		shop, err := s.CreateProject(ctx, "shop")
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if !shop.CreatedAt.Equal(clk.Now()) {
			t.Errorf("CreatedAt = %v, want %v", shop.CreatedAt, clk.Now())
		}
		if _, err := s.CreateProject(ctx, "shop"); !errors.Is(err, ErrConflict) {
			t.Errorf("second create = %v, want ErrConflict", err)
		}
		got, err := s.ProjectByID(ctx, shop.ID)
		if err != nil {
			t.Fatalf("by id: %v", err)
		}
		if diff := cmp.Diff(shop, got); diff != "" {
			t.Errorf("ProjectByID (-want +got):\n%s", diff)
		}
		list, err := s.ListProjects(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if diff := cmp.Diff([]Project{def, shop}, list); diff != "" {
			t.Errorf("ListProjects (-want +got):\n%s", diff)
		}
		if _, err := s.ProjectByName(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown name = %v, want ErrNotFound", err)
		}
		if _, err := s.ProjectByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown id = %v, want ErrNotFound", err)
		}
	})
}

func TestKeys(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		shop, err := s.CreateProject(ctx, "shop")
		if err != nil {
			t.Fatalf("create project: %v", err)
		}
		k1 := APIKey{ID: "key1", ProjectID: DefaultProjectID, Name: "admin", Scopes: []string{"admin"},
			SecretHash: []byte{1, 2, 3}}
		k2 := APIKey{ID: "key2", ProjectID: shop.ID, Name: "send", Scopes: []string{"messages:send", "messages:read"},
			SecretHash: []byte{4, 5, 6}, CreatedAt: clk.Now().Add(time.Minute)}
		for _, k := range []APIKey{k1, k2} {
			if err := s.CreateKey(ctx, k); err != nil {
				t.Fatalf("create %s: %v", k.ID, err)
			}
		}
		k1.CreatedAt = clk.Now()
		if err := s.CreateKey(ctx, k1); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate id = %v, want ErrConflict", err)
		}
		if err := s.CreateKey(ctx, APIKey{ID: "k3", ProjectID: "missing", SecretHash: []byte{1}}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown project = %v, want ErrNotFound", err)
		}
		got, err := s.KeyByID(ctx, "key1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if diff := cmp.Diff(k1, got); diff != "" {
			t.Errorf("KeyByID (-want +got):\n%s", diff)
		}
		checkKeys(t, s, "", []APIKey{k1, k2})
		checkKeys(t, s, shop.ID, []APIKey{k2})

		clk.Advance(time.Hour)
		revokedAt := clk.Now()
		if err := s.RevokeKey(ctx, "key2"); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		clk.Advance(time.Hour)
		if err := s.RevokeKey(ctx, "key2"); err != nil {
			t.Fatalf("revoke again: %v", err)
		}
		if err := s.RevokeKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("revoke unknown = %v, want ErrNotFound", err)
		}
		k2.RevokedAt = &revokedAt
		checkKeys(t, s, shop.ID, []APIKey{k2})
		if _, err := s.KeyByID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown key = %v, want ErrNotFound", err)
		}
	})
}

func checkKeys(t *testing.T, s *Store, project string, want []APIKey) {
	t.Helper()
	got, err := s.ListKeys(context.Background(), project)
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListKeys(%q) (-want +got):\n%s", project, diff)
	}
}
