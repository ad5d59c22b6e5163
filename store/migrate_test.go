package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

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
		if (i > 0 && m.Version <= st[i-1].Version) || !strings.HasPrefix(m.Name, fmt.Sprintf("%05d_", m.Version)) {
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

// TestPayloadKeptAcrossMigration8: migration 8 turns the payloads of
// version 7 (framed, or JSON alone, in messages.payload on PostgreSQL and
// message_payloads.payload on SQLite) into the columns of Payload, and
// back down into JSON alone, without losing one.
func TestPayloadKeptAcrossMigration8(t *testing.T) {
	ctx := context.Background()
	stored := map[string][]byte{
		"framed":   frame(`{"from":"a@example.com"}`, "line 1\r\nline \"2\"\n", "<p>\x00é</p>"),
		"plain":    []byte(`{"from":"a@example.com","text":"kept","html":"<b>h</b>"}`),
		"bodyless": []byte(`{"from":"a@example.com"}`),
	}
	want := map[string]Payload{
		"framed":   {Request: []byte(`{"from":"a@example.com"}`), Text: "line 1\r\nline \"2\"\n", HTML: "<p>\x00é</p>"},
		"plain":    {Request: []byte(`{"from":"a@example.com"}`), Text: "kept", HTML: "<b>h</b>"},
		"bodyless": {Request: []byte(`{"from":"a@example.com"}`)},
		"new":      {Request: []byte(`{"from":"b@example.com"}`), Text: "new text"},
	}
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, url, newClock())
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			downBelow(t, s, payloadsVersion)
			for id, b := range stored {
				insertVersion7(t, s, id, b)
			}
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up from 7: %v", err)
			}
			msg := newMsg("new", time.Now(), "b@example.org")
			msg.Payload = want["new"]
			if _, err := s.CreateMessages(ctx, []NewMessage{msg}, nil); err != nil {
				t.Fatalf("create: %v", err)
			}
			checkPayloads(t, s, want)
			downBelow(t, s, payloadsVersion)
			for id, p := range want {
				var got []byte
				q := `SELECT payload FROM messages WHERE id = $1`
				if name == DialectSQLite {
					q = `SELECT payload FROM message_payloads WHERE message_id = $1`
				}
				if err := s.db.QueryRowContext(ctx, q, id).Scan(&got); err != nil {
					t.Fatalf("%s at version 7: %v", id, err)
				}
				whole, err := wholeRequest(p)
				if err != nil {
					t.Fatal(err)
				}
				var gotJSON, wantJSON map[string]any
				if json.Unmarshal(got, &gotJSON) != nil || json.Unmarshal(whole, &wantJSON) != nil || !cmp.Equal(gotJSON, wantJSON) {
					t.Errorf("%s at version 7 = %s, want %s", id, got, whole)
				}
			}
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			checkPayloads(t, s, want)
		})
	}
}

// frame is a payload in version 7's frame (frameMagic).
func frame(head, text, html string) []byte {
	b := []byte(frameMagic)
	for _, part := range []string{head, text, html} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

// downBelow migrates s down until version is no longer applied.
func downBelow(t *testing.T, s *Store, version int64) {
	t.Helper()
	for {
		applied := false
		for _, m := range migrationStatus(t, s) {
			applied = applied || (m.Version == version && m.Applied)
		}
		if !applied {
			return
		}
		if err := s.MigrateDown(context.Background()); err != nil {
			t.Fatalf("down: %v", err)
		}
	}
}

// insertVersion7 writes a message with the stored payload b as version 7
// kept it.
func insertVersion7(t *testing.T, s *Store, id string, b []byte) {
	t.Helper()
	ctx := context.Background()
	if s.dialect == DialectPostgres {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO messages (id, project_id, from_header, from_domain,
			status, payload, created_at, updated_at) VALUES ($1, $2, 'a@example.com', 'example.com', 'queued', $3, 1, 1)`,
			id, DefaultProjectID, b); err != nil {
			t.Fatalf("insert at version 7: %v", err)
		}
		return
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO messages (id, project_id, from_header, from_domain,
		status, created_at, updated_at) VALUES ($1, $2, 'a@example.com', 'example.com', 'queued', 1, 1)`,
		id, DefaultProjectID); err != nil {
		t.Fatalf("insert at version 7: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO message_payloads (message_id, payload) VALUES ($1, $2)`, id, b); err != nil {
		t.Fatalf("insert at version 7: %v", err)
	}
}

// checkPayloads compares every stored payload with want.
func checkPayloads(t *testing.T, s *Store, want map[string]Payload) {
	t.Helper()
	for id, p := range want {
		var got Payload
		var text, html []byte
		err := s.db.QueryRowContext(context.Background(),
			`SELECT request, text, html FROM message_payloads WHERE message_id = $1`, id).Scan(&got.Request, &text, &html)
		got.Text, got.HTML = string(text), string(html)
		if err != nil {
			t.Fatalf("payload of %s: %v", id, err)
		}
		if diff := cmp.Diff(p, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("payload of %s (-want +got):\n%s", id, diff)
		}
	}
}

// inboundAuthenticatedVersion is the migration adding inbound.authenticated.
const inboundAuthenticatedVersion = 10

// TestInboundAuthenticatedMigration10: migration 10 adds
// inbound.authenticated, true for the rows written before it that were
// matched while their report carried a VERP token (the poller tied such a
// report by the token alone), false for the others; down drops the column
// and keeps the rows.
func TestInboundAuthenticatedMigration10(t *testing.T) {
	ctx := context.Background()
	rows := []struct {
		id      string
		matched bool
		summary string
		want    bool
	}{
		{"by-token", true, `{"kind":"bounce","results":[],"refs":{"verp_token":"v1.k1.abc","mailgate_id":"m"}}`, true},
		{"by-headers", true, `{"kind":"bounce","results":[],"refs":{"mailgate_id":"m"}}`, false},
		{"forged-token", false, `{"kind":"bounce","results":[],"refs":{"verp_token":"v1.k1.forged"}}`, false},
		{"token-in-text", true, `{"kind":"reply","results":[],"refs":{"in_reply_to":"m@x"},` +
			`"reply":{"from":"a@example.org","subject":"s","text":"{\"verp_token\":\"v1\"}"}}`, false},
		{"unparsed", true, `{"kind":"unknown","error":"bad`, false},
		{"empty token", true, `{"kind":"bounce","refs":{"verp_token":""}}`, false},
	}
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, url, newClock())
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			downBelow(t, s, inboundAuthenticatedVersion)
			for i, r := range rows {
				var messageID any
				if r.matched {
					messageID = "m"
				}
				if _, err := s.db.ExecContext(ctx, `INSERT INTO inbound (id, project_id, mailbox, mailbox_message_id,
					received_at, kind, matched, message_id, summary, raw_size) VALUES ($1, $2, 'mb', $3, 1, 'bounce', $4, $5, $6, 0)`,
					r.id, DefaultProjectID, fmt.Sprint(i), r.matched, messageID, r.summary); err != nil {
					t.Fatalf("insert %s below version 10: %v", r.id, err)
				}
			}
			for pass := range 2 {
				if err := s.MigrateUp(ctx); err != nil {
					t.Fatalf("up (pass %d): %v", pass, err)
				}
				for _, r := range rows {
					var got bool
					if err := s.db.QueryRowContext(ctx, `SELECT authenticated FROM inbound WHERE id = $1`, r.id).Scan(&got); err != nil {
						t.Fatalf("%s: %v", r.id, err)
					}
					if got != r.want {
						t.Errorf("pass %d: %s authenticated = %v, want %v", pass, r.id, got, r.want)
					}
				}
				downBelow(t, s, inboundAuthenticatedVersion)
				var n int
				if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM inbound`).Scan(&n); err != nil || n != len(rows) {
					t.Fatalf("rows after down: %d, %v; want %d", n, err, len(rows))
				}
				if _, err := s.db.ExecContext(ctx, `SELECT authenticated FROM inbound`); err == nil {
					t.Fatal("inbound.authenticated survived migrating down")
				}
			}
		})
	}
}

// domainVerificationVersion is the migration that adds domain statuses and
// lets an event have no message.
const domainVerificationVersion = 9

// TestEventsKeptAcrossMigration9: migration 9 keeps every event (ids,
// data), the indexes, the foreign key to messages and, on SQLite, the
// AUTOINCREMENT counter of the rebuilt table; events without a message
// can then be written, and down deletes only those.
func TestEventsKeptAcrossMigration9(t *testing.T) {
	ctx := context.Background()
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			s := openStore(t, url, clk)
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			downBelow(t, s, domainVerificationVersion)
			for _, id := range []string{"m1", "m2", "m3"} {
				if _, err := s.CreateMessages(ctx, []NewMessage{newMsg(id, clk.Now(), "a@example.org", "b@example.org")}, nil); err != nil {
					t.Fatalf("create %s at version 8: %v", id, err)
				}
			}
			var lastID int64
			if err := s.db.QueryRowContext(ctx, `SELECT MAX(id) FROM events`).Scan(&lastID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.ExecContext(ctx, `DELETE FROM messages WHERE id = 'm3'`); err != nil {
				t.Fatal(err) // the newest events go with their message: their ids must not come back
			}
			before := allEvents(t, s)
			if len(before) != 4 {
				t.Fatalf("%d events at version 8, want 4", len(before))
			}

			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up from 8: %v", err)
			}
			if diff := cmp.Diff(before, allEvents(t, s)); diff != "" {
				t.Errorf("events after up (-before +after):\n%s", diff)
			}
			checkEventIndexes(t, s)
			if _, err := s.db.ExecContext(ctx, `INSERT INTO events (project_id, message_id, type, sequence, created_at)
				VALUES ($1, 'no-such-message', 'message.sent', 9, 1)`, DefaultProjectID); err == nil {
				t.Error("an event of a message that does not exist was written: the foreign key is gone")
			}
			newDomain(t, s, DefaultProjectID, "shop.example")
			if res := recordCheck(t, s, DefaultProjectID, "shop.example", true); !res.Changed {
				t.Fatalf("verify after up = %+v", res)
			}
			after := allEvents(t, s)
			if len(after) != 5 || after[0].Type != EventDomainVerified || after[0].MessageID != "" || after[0].Domain != "shop.example" {
				t.Fatalf("events after a verification = %+v, want the domain event first", after)
			}
			if after[0].ID <= lastID {
				t.Errorf("the domain event took id %d, not above the last id ever used (%d)", after[0].ID, lastID)
			}
			if _, err := s.db.ExecContext(ctx, `DELETE FROM messages WHERE id = 'm2'`); err != nil {
				t.Fatal(err)
			}
			if n := len(allEvents(t, s)); n != 3 {
				t.Errorf("%d events after deleting a message of two, want 3: the cascade is gone", n)
			}

			downBelow(t, s, domainVerificationVersion)
			if diff := cmp.Diff(before[2:], allEvents(t, s)); diff != "" {
				t.Errorf("events after down (-want +got):\n%s", diff)
			}
			checkEventIndexes(t, s)
			if _, err := s.db.ExecContext(ctx, `INSERT INTO events (project_id, message_id, type, sequence, created_at)
				VALUES ($1, NULL, 'domain.verified', 0, 1)`, DefaultProjectID); err == nil {
				t.Error("an event without a message was written at version 8")
			}
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
		})
	}
}

// allEvents lists the default project's events, newest first.
func allEvents(t *testing.T, s *Store) []Event {
	t.Helper()
	evs, err := queryEvents(context.Background(), s.db, `SELECT `+eventColumns+eventsJoined+`
		WHERE e.project_id = $1 ORDER BY e.id DESC`, []any{DefaultProjectID})
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	return evs
}

// checkEventIndexes asserts that the events table has its two indexes.
func checkEventIndexes(t *testing.T, s *Store) {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND name LIKE 'events_%'`
	if s.dialect == DialectPostgres {
		q = `SELECT indexname FROM pg_indexes WHERE tablename = 'events' AND indexname LIKE 'events_%' AND indexname <> 'events_pkey'`
	}
	rows, err := s.db.QueryContext(context.Background(), q+` ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if diff := cmp.Diff([]string{"events_message_sequence_idx", "events_project_id_idx"}, names); diff != "" {
		t.Errorf("indexes of events (-want +got):\n%s", diff)
	}
}

// TestFeedbackKeysAcrossMigration18: a provider event recorded under its
// bare id before migration 18 is keyed by its project after it, so the
// provider's retry of it is a duplicate; down takes the prefix off again.
func TestFeedbackKeysAcrossMigration18(t *testing.T) {
	const feedbackKeysVersion = 18
	ctx := context.Background()
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, url, newClock())
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			downBelow(t, s, feedbackKeysVersion)
			msg := newMsg("m-feedback", time.Now(), "gone@example.org")
			if _, err := s.CreateMessages(ctx, []NewMessage{msg}, nil); err != nil {
				t.Fatalf("create: %v", err)
			}
			record := func(key, project, message string) InboundResult {
				t.Helper()
				res, err := s.RecordInbound(ctx, InboundRecord{Mailbox: "feedback/ses", MailboxMessageID: key,
					Kind: "bounce", Summary: []byte(`{}`), ProjectID: project, MessageID: message})
				if err != nil {
					t.Fatalf("record %s: %v", key, err)
				}
				return res
			}
			record("ev-old", msg.ProjectID, msg.ID)
			record("ev-unmatched", "", "")
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("up from 17: %v", err)
			}
			if !record(msg.ProjectID+"/ev-old", msg.ProjectID, msg.ID).Duplicate {
				t.Error("the retry of an event recorded before the migration is not a duplicate")
			}
			if !record("ev-unmatched", "", "").Duplicate {
				t.Error("an unmatched row's key changed")
			}
			downBelow(t, s, feedbackKeysVersion)
			if !record("ev-old", msg.ProjectID, msg.ID).Duplicate {
				t.Error("down did not give the event its bare id back")
			}
		})
	}
}
