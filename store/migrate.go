package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/mailgate/mailgate/migrations"
)

// MigrationStatus is one migration file and whether it is applied.
type MigrationStatus struct {
	// Version is the file's numeric prefix.
	Version int64
	// Name is the file name, e.g. "00001_init.sql"; for a migration
	// written in Go, its version and "_go" ("00008_go").
	Name string
	// Applied is true once the migration ran.
	Applied bool
}

// provider builds a goose provider over this dialect's embedded folder. On
// PostgreSQL an advisory session lock keeps several starting processes from
// migrating at once; SQLite's single writer connection does the same.
func (s *Store) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations.FS, s.dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", s.dialect, err)
	}
	opts := []goose.ProviderOption{goose.WithLogger(goose.NopLogger()),
		goose.WithGoMigrations(payloadsMigration(s.dialect))}
	dialect := goose.DialectSQLite3
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, nil
}

// migrationName is MigrationStatus.Name.
func migrationName(src *goose.Source) string {
	if src.Type == goose.TypeGo {
		return fmt.Sprintf("%05d_go", src.Version)
	}
	return path.Base(src.Path)
}

// MigrateUp applies every pending migration. It takes no statistics
// (ANALYZE): on a new database they would record empty tables, and the
// plans PostgreSQL then caches for a session, those of its own foreign-key
// checks included, scan the whole table for a key; measured, every insert
// of a recipient scanned messages until autovacuum analysed it again, and
// the end-to-end rate fell by a fifth. Without statistics the planner
// assumes a table of some pages and probes the keys; autovacuum takes the
// statistics once the tables hold rows.
func (s *Store) MigrateUp(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// MigrateDown rolls back the latest applied migration (one step).
func (s *Store) MigrateDown(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	if _, err := p.Down(ctx); err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// MigrationStatus lists every known migration in version order.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationStatus, error) {
	p, err := s.provider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, m := range st {
		out = append(out, MigrationStatus{
			Version: m.Source.Version,
			Name:    migrationName(m.Source),
			Applied: m.State == goose.StateApplied,
		})
	}
	return out, nil
}
