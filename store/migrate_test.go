package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

func TestMigrateUpDownStatus(t *testing.T) {
	ctx := context.Background()
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, url, newClock())
			if s.Dialect() != name {
				t.Fatalf("Dialect() = %q, want %q", s.Dialect(), name)
			}
			total := len(migrationStatus(t, s))
			if total < 2 {
				t.Fatalf("%d migrations, want at least 2", total)
			}
			checkApplied(t, s, 0)
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("second up: %v", err)
			}
			checkApplied(t, s, total)
			if _, err := s.ProjectByName(ctx, DefaultProjectName); err != nil {
				t.Fatalf("default project after up: %v", err)
			}
			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("down: %v", err)
			}
			checkApplied(t, s, total-1)
			for i := 1; i < total; i++ {
				if err := s.MigrateDown(ctx); err != nil {
					t.Fatalf("down %d: %v", i, err)
				}
			}
			checkApplied(t, s, 0)
			if _, err := s.ListProjects(ctx); err == nil {
				t.Fatal("projects table survived migrating all the way down")
			}
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			checkApplied(t, s, total)
		})
	}
}

func migrationStatus(t *testing.T, s *Store) []MigrationStatus {
	t.Helper()
	st, err := s.MigrationStatus(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// checkApplied asserts that exactly the first n migrations, numbered 1, 2,
// … in order, are applied.
func checkApplied(t *testing.T, s *Store, n int) {
	t.Helper()
	st := migrationStatus(t, s)
	for i, m := range st {
		if m.Version != int64(i+1) || !strings.HasPrefix(m.Name, fmt.Sprintf("%05d_", i+1)) {
			t.Fatalf("migration %d is %d %s", i, m.Version, m.Name)
		}
		if m.Applied != (i < n) {
			t.Fatalf("migration %s applied = %v, want the first %d applied", m.Name, m.Applied, n)
		}
	}
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	for _, u := range []string{"mysql://u:secret@h/db", "sqlite:", "sqlite::memory:", "sqlite:/tmp/x.db?mode=ro"} {
		t.Run(u, func(t *testing.T) {
			_, err := Open(context.Background(), Config{URL: u})
			if !errors.Is(err, ErrUnsupportedURL) {
				t.Fatalf("Open(%q) = %v, want ErrUnsupportedURL", u, err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the URL password: %v", err)
			}
		})
	}
}

func TestOpenCreatesSQLiteDirectory(t *testing.T) {
	dir := t.TempDir() + "/nested/deeper"
	s := openStore(t, "sqlite:"+dir+"/mg.db", newClock())
	if err := s.MigrateUp(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

// TestPayloadKeptAcrossMigration5: migration 5 moves SQLite's stored
// payloads to a table of their own and back down again without losing
// one; on PostgreSQL it changes nothing. Either way a delivery reads the
// payload as it was stored.
func TestPayloadKeptAcrossMigration5(t *testing.T) {
	ctx := context.Background()
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, url, newClock())
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			for migrationStatus(t, s)[4].Applied {
				if err := s.MigrateDown(ctx); err != nil {
					t.Fatalf("down: %v", err)
				}
			}
			checkApplied(t, s, 4)
			const payload = `{"text":"kept"}`
			// Version 4's messages row, payload inline, written by hand.
			if _, err := s.db.ExecContext(ctx, `INSERT INTO messages (id, project_id, from_header, from_domain,
				status, payload, created_at, updated_at) VALUES ('old', $1, 'a@example.com', 'example.com', 'queued', $2, 1, 1)`,
				DefaultProjectID, []byte(payload)); err != nil {
				t.Fatalf("insert at version 4: %v", err)
			}
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up from 4: %v", err)
			}
			msg := newMsg("new", time.Now(), "b@example.org")
			msg.Payload = []byte(payload)
			if err := s.CreateMessages(ctx, []NewMessage{msg}, nil); err != nil {
				t.Fatalf("create: %v", err)
			}
			for _, id := range []string{"old", "new"} {
				got, err := s.MessagePayload(ctx, id)
				if err != nil || string(got) != payload {
					t.Errorf("%s payload at version 5 = %q, %v; want %s", id, got, err, payload)
				}
			}
			for migrationStatus(t, s)[4].Applied {
				if err := s.MigrateDown(ctx); err != nil {
					t.Fatalf("down to 4: %v", err)
				}
			}
			for _, id := range []string{"old", "new"} {
				var got []byte
				if err := s.db.QueryRowContext(ctx, `SELECT payload FROM messages WHERE id = $1`, id).Scan(&got); err != nil || string(got) != payload {
					t.Errorf("%s payload back at version 4 = %q, %v; want %s", id, got, err, payload)
				}
			}
		})
	}
}
