package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"
)

// Migration 11 lets the event log hold events without a message (an
// endpoint disabled for failing, a domain's verification): it makes
// events.message_id nullable where it is not yet. On PostgreSQL that is
// one ALTER, a no-op when the column already allows NULL. SQLite cannot
// drop a NOT NULL constraint, so there the table is rebuilt with its
// rows, ids, foreign key, indexes and AUTOINCREMENT counter (so that the
// id of an event deleted before never comes back) — only when the column
// is still NOT NULL, since another migration may have rebuilt it
// already. It is written in Go for that check. Down leaves the column
// nullable: the older code reads and writes it unchanged.
const eventsNullableVersion = 11

// eventsNullableMigration is migration 11 for dialect.
func eventsNullableMigration(dialect string) *goose.Migration {
	up := func(ctx context.Context, tx *sql.Tx) error {
		if dialect == DialectPostgres {
			_, err := tx.ExecContext(ctx, `ALTER TABLE events ALTER COLUMN message_id DROP NOT NULL`)
			return err
		}
		var notNull bool
		err := tx.QueryRowContext(ctx, `SELECT "notnull" FROM pragma_table_info('events') WHERE name = 'message_id'`).Scan(&notNull)
		if err != nil {
			return fmt.Errorf("events.message_id: %w", err)
		}
		if !notNull {
			return nil
		}
		return execAll(ctx, tx, rebuildEventsSQLite)
	}
	down := func(context.Context, *sql.Tx) error { return nil }
	return goose.NewGoMigration(eventsNullableVersion, &goose.GoFunc{RunTx: up}, &goose.GoFunc{RunTx: down})
}

// rebuildEventsSQLite rebuilds events with a nullable message_id.
var rebuildEventsSQLite = []string{
	`CREATE TABLE events_new (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		project_id TEXT NOT NULL,
		message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
		recipient  TEXT NOT NULL DEFAULT '',
		type       TEXT NOT NULL,
		sequence   BIGINT NOT NULL,
		data       TEXT NOT NULL DEFAULT '{}',
		created_at BIGINT NOT NULL)`,
	`INSERT INTO events_new (id, project_id, message_id, recipient, type, sequence, data, created_at)
		SELECT id, project_id, message_id, recipient, type, sequence, data, created_at FROM events`,
	`DELETE FROM sqlite_sequence WHERE name = 'events_new'`,
	`INSERT INTO sqlite_sequence (name, seq) SELECT 'events_new', seq FROM sqlite_sequence WHERE name = 'events'`,
	`DROP TABLE events`,
	`ALTER TABLE events_new RENAME TO events`,
	`CREATE INDEX events_project_id_idx ON events (project_id, id)`,
	`CREATE UNIQUE INDEX events_message_sequence_idx ON events (message_id, sequence)`,
}
