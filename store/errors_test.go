package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailgate/mailgate/internal/dbfault"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestIsUnavailable: the drivers' connection failures are unavailability,
// whatever wraps them; results and the database's refusals are not.
func TestIsUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ours", fmt.Errorf("load: %w", ErrUnavailable), true},
		{"refused", fmt.Errorf("begin: %w", refused), true},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"bad conn", driver.ErrBadConn, true},
		{"conn done", sql.ErrConnDone, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"lock not available", &pgconn.PgError{Code: "55P03"}, true},
		{"no rows", sql.ErrNoRows, false},
		{"not found", ErrNotFound, false},
		{"canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsUnavailable(tt.err); got != tt.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// faultyStore is a store of one engine whose database a test can take
// away: PostgreSQL through a loopback proxy that cuts every connection,
// SQLite through a driver that breaks its connections. Both carry faults
// for single statements and commits.
type faultyStore struct {
	s      *Store
	faults *dbfault.Faults
	down   func(bool)
}

// faultyEngines runs fn once per engine on a fresh, migrated faultyStore.
func faultyEngines(t *testing.T, fn func(t *testing.T, fs faultyStore)) {
	t.Helper()
	t.Parallel()
	for _, name := range []string{DialectPostgres, DialectSQLite} {
		t.Run(name, func(t *testing.T) {
			faults := &dbfault.Faults{}
			cfg := Config{URL: testsvc.SQLiteURL(t), Now: newClock().Now, WrapConnector: faults.Wrap}
			fs := faultyStore{faults: faults, down: faults.SetDown}
			if name == DialectPostgres {
				proxy := testsvc.StartProxy(t, "127.0.0.1:5432")
				cfg.URL = proxy.ViaURL(t, testsvc.PostgresURL(t))
				fs.down = func(down bool) {
					if down {
						proxy.Cut()
					} else {
						proxy.Restore()
					}
				}
			}
			s, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if err := s.MigrateUp(context.Background()); err != nil {
				t.Fatalf("migrate up: %v", err)
			}
			fs.s = s
			fn(t, fs)
		})
	}
}

// suppress writes one suppression in a transaction of its own; cut, when
// set, runs inside it before the COMMIT.
func (fs faultyStore) suppress(ctx context.Context, email string, cut func()) error {
	return fs.s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO suppressions (project_id, email, reason, note, created_at, updated_at)
			VALUES ($1, $2, $3, '', 1, 1)`, DefaultProjectID, email, ReasonManual); err != nil {
			return err
		}
		if cut != nil {
			cut()
		}
		return nil
	})
}

// TestCommitOutcomes: a COMMIT whose answer was lost after the database
// committed is ErrCommitUnknown (and ErrUnavailable); a connection lost
// before or during the COMMIT is ErrUnavailable, and ErrCommitUnknown
// unless the driver proves nothing was sent; a statement that failed on
// a broken connection is ErrUnavailable only; a database that is gone is
// ErrUnavailable for reads too.
func TestCommitOutcomes(t *testing.T) {
	faultyEngines(t, func(t *testing.T, fs faultyStore) {
		ctx := context.Background()
		exists := func(email string) bool {
			t.Helper()
			_, err := fs.s.GetSuppression(ctx, DefaultProjectID, email)
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}

		fs.faults.LoseCommit("INSERT INTO suppressions", io.ErrUnexpectedEOF)
		err := fs.suppress(ctx, "lost@example.org", nil)
		if !errors.Is(err, ErrCommitUnknown) || !errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
			t.Errorf("commit whose answer was lost: %v, want ErrCommitUnknown and ErrUnavailable", err)
		}
		if !exists("lost@example.org") {
			t.Error("the commit whose answer was lost did not commit")
		}

		fs.faults.FailStatement("INSERT INTO suppressions", driver.ErrBadConn)
		err = fs.suppress(ctx, "failed@example.org", nil)
		if !IsUnavailable(err) || errors.Is(err, ErrCommitUnknown) {
			t.Errorf("statement on a broken connection: %v, want unavailable, not commit unknown", err)
		}

		// pgx reports the COMMIT it could not write as safe to retry
		// (nothing was sent); a bare driver.ErrBadConn from Commit, as the
		// broken SQLite driver answers, promises nothing.
		wantUnknown := fs.s.Dialect() == DialectSQLite
		err = fs.suppress(ctx, "cut@example.org", func() { fs.down(true) })
		if !IsUnavailable(err) || !strings.HasPrefix(err.Error(), "commit") || errors.Is(err, ErrCommitUnknown) != wantUnknown {
			t.Errorf("connection cut before COMMIT: %v, want an unavailable commit, outcome unknown %v", err, wantUnknown)
		}
		if _, err := fs.s.GetSuppression(ctx, DefaultProjectID, "lost@example.org"); !IsUnavailable(err) {
			t.Errorf("read while the database is gone: %v, want unavailable", err)
		}
		fs.down(false)
		if exists("cut@example.org") || exists("failed@example.org") {
			t.Error("a transaction whose statement or connection failed committed")
		}
	})
}
