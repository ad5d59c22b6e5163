package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrUnavailable: the database could not be reached or dropped the
// connection; the operation may be retried later. Nothing is known to
// have been written, except where ErrCommitUnknown says otherwise.
var ErrUnavailable = errors.New("database unavailable")

// ErrCommitUnknown: the connection was lost while a COMMIT was under way,
// so the transaction may or may not have been committed. It always comes
// with ErrUnavailable.
var ErrCommitUnknown = errors.New("commit outcome unknown")

// IsUnavailable reports whether err says the database could not serve the
// call: ErrUnavailable, or a driver error of a connection that could not
// be made or was lost (refused, reset, EOF, a network timeout,
// driver.ErrBadConn, sql.ErrConnDone, a PostgreSQL connect error, SQLSTATE
// class 08 or 57P01–57P03), or SQLite busy past its busy timeout, locked,
// out of disk, unable to open its file or failing I/O. Those SQLite codes
// count because nothing was committed and only time (another process
// letting go of the file, an operator freeing the disk) helps: the same
// call may succeed later, which is what a caller retrying on
// ErrUnavailable expects. So are PostgreSQL's transient refusals of one
// transaction (class 40: a serialization failure or a deadlock; 55P03 a
// lock not available; 57014 a statement timeout): nothing of it was
// written and the same call may succeed when run again. A constraint or
// syntax error is not one.
func IsUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var liteErr *sqlite.Error
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrUnavailable), errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &connErr): // refused, or the server turned the session away
		return true
	case errors.As(err, &pgErr):
		return pgUnavailable(pgErr.Code) || pgTransient(pgErr.Code)
	case pgconn.SafeToRetry(err), pgconn.Timeout(err), errors.As(err, &netErr):
		return true
	case errors.As(err, &liteErr):
		return sqliteUnavailable(liteErr.Code())
	}
	return false
}

// pgUnavailable reports whether a PostgreSQL SQLSTATE says the server
// cannot serve: class 08 (connection exception), 57P01 admin_shutdown,
// 57P02 crash_shutdown, 57P03 cannot_connect_now.
func pgUnavailable(code string) bool {
	return len(code) == 5 && code[:2] == "08" || code == "57P01" || code == "57P02" || code == "57P03"
}

// pgTransient reports whether a PostgreSQL SQLSTATE refuses one
// transaction for now: class 40 (transaction rollback), 55P03
// lock_not_available, 57014 query_canceled.
func pgTransient(code string) bool {
	return len(code) == 5 && code[:2] == "40" || code == "55P03" || code == "57014"
}

// sqliteUnavailable reports whether an SQLite result code (its primary
// code is the low byte) is one of IsUnavailable's.
func sqliteUnavailable(code int) bool {
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
		return true
	}
	return false
}

// commitError wraps the error of a COMMIT (or of a pipeline ending in
// one), marking a lost connection as ErrCommitUnknown. The outcome is
// known only when the database answered (a PostgreSQL error such as a
// serialization failure, any SQLite error: SQLite rolls back a commit that
// fails) or when the driver says nothing was sent (pgconn.SafeToRetry).
// Any other unavailability, driver.ErrBadConn from a Commit included
// (database/sql passes it on and does not retry a Commit), may have come
// after the server committed.
func commitError(err error) error {
	if IsUnavailable(err) && !commitRefused(err) {
		return fmt.Errorf("commit: %w: %w: %w", ErrCommitUnknown, ErrUnavailable, err)
	}
	if IsUnavailable(err) {
		return fmt.Errorf("commit: %w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("commit: %w", err)
}

// commitRefused reports whether a COMMIT's error proves that nothing was
// committed.
func commitRefused(err error) bool {
	var pgErr *pgconn.PgError
	var liteErr *sqlite.Error
	var connErr *pgconn.ConnectError
	switch {
	case pgconn.SafeToRetry(err), errors.As(err, &liteErr), errors.As(err, &connErr):
		return true
	case errors.As(err, &pgErr):
		return !pgUnavailable(pgErr.Code) // a shutdown may end the session after its COMMIT
	}
	return false
}

// isUniqueViolation reports whether err is a unique constraint refusing a
// write: SQLSTATE 23505 on PostgreSQL, SQLITE_CONSTRAINT_UNIQUE on SQLite.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	var liteErr *sqlite.Error
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code == "23505"
	case errors.As(err, &liteErr):
		return liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}
