package store

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// listAdditions are the schema additions a faster filtered message list
// could take, each measured alone by BenchmarkCreateMessagesListIndexes
// (per engine: PostgreSQL, then SQLite). Migration 00020 has the status
// index on both engines; the benchmark drops it before each arm, so that
// every arm is measured against the schema without it.
var listAdditions = []struct {
	name             string
	postgres, sqlite []string
}{
	{name: "none"},
	{name: "status-index",
		postgres: []string{`CREATE INDEX bench_status_idx ON messages (project_id, status, created_at DESC, id DESC)`},
		sqlite:   []string{`CREATE INDEX bench_status_idx ON messages (project_id, status, created_at DESC, id DESC)`}},
	{name: "domain-index",
		postgres: []string{`CREATE INDEX bench_domain_idx ON messages (project_id, from_domain, created_at DESC, id DESC)`},
		sqlite:   []string{`CREATE INDEX bench_domain_idx ON messages (project_id, from_domain, created_at DESC, id DESC)`}},
	// A count of messages per project and status, kept by a trigger on
	// insert (a send only inserts): one statement-level trigger on
	// PostgreSQL, a row trigger on SQLite, which has no other kind.
	{name: "counter-trigger",
		postgres: []string{
			`CREATE TABLE bench_counts (project_id TEXT, status TEXT, n BIGINT NOT NULL, PRIMARY KEY (project_id, status))`,
			`CREATE FUNCTION bench_count() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				INSERT INTO bench_counts SELECT project_id, status, count(*) FROM new_rows GROUP BY 1, 2
				ON CONFLICT (project_id, status) DO UPDATE SET n = bench_counts.n + EXCLUDED.n;
				RETURN NULL;
			END $$`,
			`CREATE TRIGGER bench_count AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows
				FOR EACH STATEMENT EXECUTE FUNCTION bench_count()`},
		sqlite: []string{
			`CREATE TABLE bench_counts (project_id TEXT, status TEXT, n BIGINT NOT NULL, PRIMARY KEY (project_id, status))`,
			`CREATE TRIGGER bench_count AFTER INSERT ON messages BEGIN
				INSERT INTO bench_counts VALUES (NEW.project_id, NEW.status, 1)
				ON CONFLICT (project_id, status) DO UPDATE SET n = n + 1;
			END`}},
}

// BenchmarkCreateMessagesListIndexes measures what each of listAdditions
// costs the send path: batches of 100 sends, 4 at a time (the batch
// route's path, as BenchmarkCreateMessagesFanout), on a fresh database
// with the addition alone. Besides msgs/s (noisy on a shared machine) it
// reports the CPU time per message of this process and, on PostgreSQL,
// of the server's processes serving the benchmark's database (on SQLite,
// the bytes this process wrote). -count repeats an arm back to back; run
// the command several times to alternate the arms:
//
//	go test ./store -run '^$' -bench CreateMessagesListIndexes -cpu 2 -benchtime 200x
func BenchmarkCreateMessagesListIndexes(b *testing.B) {
	for _, engine := range []string{"postgres", "sqlite"} {
		for _, add := range listAdditions {
			ddl := add.sqlite
			if engine == "postgres" {
				ddl = add.postgres
			}
			b.Run(engine+"/"+add.name, func(b *testing.B) { benchCreateWith(b, engine, ddl) })
		}
	}
}

func benchCreateWith(b *testing.B, engine string, ddl []string) {
	ctx := context.Background()
	dbURL := testsvc.SQLiteURL(b)
	if engine == "postgres" {
		dbURL = testsvc.PostgresURL(b)
	}
	s, err := Open(ctx, Config{URL: dbURL})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.MigrateUp(ctx); err != nil {
		b.Fatal(err)
	}
	ddl = append([]string{`DROP INDEX messages_project_status_created_idx`}, ddl...)
	for _, q := range ddl {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	srv0 := serverCPU(engine, dbURL)
	msgs, written := createBatches(b, s)
	if engine == "postgres" {
		b.ReportMetric(float64(serverCPU(engine, dbURL)-srv0)/msgs/1e3, "server-cpu-us/msg")
	} else {
		b.ReportMetric(float64(written)/msgs, "written-B/msg")
	}
}

// serverCPU is the CPU time of the PostgreSQL backends connected to the
// database of dbURL (Linux /proc; 0 for SQLite or elsewhere).
func serverCPU(engine, dbURL string) time.Duration {
	u, err := url.Parse(dbURL)
	if engine != "postgres" || err != nil {
		return 0
	}
	name := " " + strings.TrimPrefix(u.Path, "/") + " "
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, st := range stats {
		cmd, err := os.ReadFile(filepath.Join(filepath.Dir(st), "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: ") || !strings.Contains(string(cmd), name) {
			continue
		}
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis: utime and
		// stime are the 12th and 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
