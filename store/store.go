// Package store is mailgate's system of record: projects, API keys,
// messages and their recipients, the event log (which is also the webhook
// outbox), suppressions and idempotency records, on PostgreSQL (pgx) in
// production and SQLite (modernc.org/sqlite) as the embedded single-node
// default. Reads and most writes are the same SQL on both; the hot writes
// (creating messages, a delivery group) have one implementation per
// dialect. Times are stored as Unix microseconds and JSON as text, so both
// dialects read the same rows.
//
// The store knows nothing of HTTP, Redis or SMTP: callers map its sentinel
// errors to their own protocol.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also the database/sql driver "pgx"
	"modernc.org/sqlite"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound: the row does not exist in the caller's project.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique name or id is already taken.
	ErrConflict = errors.New("already exists")
	// ErrNotCancellable: no recipient of the message is queued, scheduled
	// or deferred any more.
	ErrNotCancellable = errors.New("message cannot be cancelled")
	// ErrUnsupportedURL: Config.URL is neither postgres:// nor sqlite:.
	ErrUnsupportedURL = errors.New("unsupported database URL")
	// ErrBadCursor: a page cursor was not one this store handed out.
	ErrBadCursor = errors.New("invalid cursor")
	// ErrIdempotencyLost: CreateMessages or CommitMessage was asked to finish an
	// idempotency key that is no longer held in flight (purged, or taken
	// over as stale by another request); nothing was written.
	ErrIdempotencyLost = errors.New("idempotency key no longer held")
)

// Dialect names returned by Store.Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// DefaultURL is the database used when Config.URL is empty.
const DefaultURL = "sqlite:./data/mailgate.db"

// DefaultProjectID is the id the first migration gives the project named
// DefaultProjectName.
const DefaultProjectID = "00000000-0000-7000-8000-000000000001"

// Config configures Open.
type Config struct {
	// URL is "postgres://…", "postgresql://…" or "sqlite:PATH". Default
	// DefaultURL ("sqlite:./data/mailgate.db").
	URL string
	// MaxOpenConns bounds the PostgreSQL connection pool. Default 32.
	// SQLite always uses one writer connection and a small reader pool.
	MaxOpenConns int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// CommitGroup bounds how many concurrent calls are written in one
	// statement or transaction: CommitMessage calls, and delivery calls
	// (StartDelivery, StartFirstDelivery, RecordOutcomes) together.
	// Default 64; 1 writes each call on its own.
	CommitGroup int
	// CommitWriters bounds how many CommitMessage groups are written at
	// once. Default 4 on PostgreSQL, 1 on SQLite (one writer connection).
	// Delivery starts and outcomes share one writer whatever this says.
	CommitWriters int
	// RollupLag is how old an event must be before RollUpEvents counts
	// it. Default DefaultRollupLagPostgres (30 s) on PostgreSQL, whose
	// ids can commit out of order (see there), and none on SQLite.
	RollupLag time.Duration
	// WrapConnector, when set, wraps the database driver's connector of
	// every pool, so that tests can inject faults (a failing write, a cut
	// connection) below database/sql. Default none.
	WrapConnector func(driver.Connector) driver.Connector
}

// wrap applies c.WrapConnector to conn.
func (c Config) wrap(conn driver.Connector) driver.Connector {
	if c.WrapConnector == nil {
		return conn
	}
	return c.WrapConnector(conn)
}

// Store is the system of record. It is safe for concurrent use.
type Store struct {
	dialect string
	// db takes every write. On SQLite it holds one connection and starts
	// transactions with BEGIN IMMEDIATE, so writers queue in Go instead of
	// failing with SQLITE_BUSY.
	db *sql.DB
	// rdb serves reads. On PostgreSQL it is db; on SQLite a separate pool
	// of read-only connections that WAL lets run beside the writer.
	rdb *sql.DB
	now func() time.Time
	// sqlite holds the delivery writer's statements on SQLite
	// (deliverysqlite.go); nil on PostgreSQL.
	sqlite *sqliteDelivery
	// commits gathers concurrent CommitMessage calls, deliveries
	// concurrent delivery starts and outcomes (batcher.go,
	// deliverywriter.go).
	commits    *batcher[*commitRequest]
	deliveries *batcher[deliveryOp]
	// hookAttempts gathers concurrent RecordWebhookAttempt calls
	// (webhooks.go).
	hookAttempts *batcher[*attemptRequest]
	// creates are the statements that create messages (messagewrite.go).
	creates *createStatements
	// rollupLag is Config.RollupLag with its default (rollup.go).
	rollupLag time.Duration
}

// Open connects to the database named by cfg.URL. It does not migrate; call
// MigrateUp. For SQLite it creates the database file's directory.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if cfg.MaxOpenConns <= 0 {
		cfg.MaxOpenConns = 32
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var s *Store
	var err error
	switch {
	case strings.HasPrefix(cfg.URL, "postgres://"), strings.HasPrefix(cfg.URL, "postgresql://"):
		s, err = openPostgres(cfg)
	case strings.HasPrefix(cfg.URL, "sqlite:"):
		s, err = openSQLite(cfg)
	default:
		// The URL itself is not echoed: it may carry a password.
		return nil, fmt.Errorf("%w: want postgres://… or sqlite:PATH", ErrUnsupportedURL)
	}
	if err != nil {
		return nil, err
	}
	s.creates = newCreateStatements(s.db, s.dialect)
	s.rollupLag = cfg.RollupLag
	if s.rollupLag == 0 && s.dialect == DialectPostgres {
		s.rollupLag = DefaultRollupLagPostgres
	}
	group, writers := cfg.commitGroup(), cfg.commitWriters(s.dialect)
	s.commits = newBatcher(group, writers, s.writeCommits)
	// One delivery writer: starts and outcomes arriving while it writes
	// wait for its next group, so groups grow with the load and each pays
	// one commit; two writers halved the groups and doubled the commits.
	s.deliveries = newBatcher(group, 1, s.writeDeliveries)
	s.hookAttempts = newBatcher(group, 1, s.writeWebhookAttempts)
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (c Config) commitGroup() int {
	if c.CommitGroup <= 0 {
		return 64
	}
	return c.CommitGroup
}

func (c Config) commitWriters(dialect string) int {
	switch {
	case c.CommitWriters > 0:
		return c.CommitWriters
	case dialect == DialectSQLite:
		return 1
	}
	return 4
}

func openPostgres(cfg Config) (*Store, error) {
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db := sql.OpenDB(cfg.wrap(stdlib.GetConnector(*cc)))
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{dialect: DialectPostgres, db: db, rdb: db, now: cfg.Now}, nil
}

// sqlitePragmas: WAL so readers run beside the writer, a busy timeout for
// other processes on the same file, foreign keys on, and synchronous FULL
// because an accepted message must survive power loss. temp_store(memory)
// keeps statement journals in memory: a statement that fires a trigger
// (every event written while a webhook endpoint exists, migration 00012)
// journals each page it changes so it can be undone alone, and on file
// those journals were most of the bytes a send wrote (same-run A/B,
// BenchmarkCreateMessagesFanout, docs/performance.md). Temporary tables
// and sorts too stay in memory; the store's queries sort pages of a
// bounded size.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
	"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_pragma=temp_store(memory)"

func openSQLite(cfg Config) (*Store, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(cfg.URL, "sqlite:"), "//")
	if path == "" || strings.ContainsAny(path, "?#") || strings.Contains(path, ":memory:") {
		return nil, fmt.Errorf("%w: sqlite:PATH needs a file path without ? or #", ErrUnsupportedURL)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create sqlite directory: %w", err)
	}
	dsn := "file:" + path + "?" + sqlitePragmas
	db, err := openSQLiteDB(cfg, dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	rdb, err := openSQLiteDB(cfg, dsn+"&_pragma=query_only(1)")
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	return &Store{dialect: DialectSQLite, db: db, rdb: rdb, now: cfg.Now, sqlite: newSQLiteDelivery(db)}, nil
}

// openSQLiteDB opens a pool of SQLite connections that cache their
// prepared statements (stmtcache.go).
func openSQLiteDB(cfg Config, dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(cfg.wrap(cachingConnector{c})), nil
}

// Dialect is "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// Close closes the connection pools.
func (s *Store) Close() error {
	var err error
	if s.creates != nil {
		s.creates.close()
	}
	if s.sqlite != nil {
		err = s.sqlite.close()
	}
	err = errors.Join(err, s.db.Close())
	if s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.dialect, err)
	}
	if s.rdb != s.db {
		if err := s.rdb.PingContext(ctx); err != nil {
			return fmt.Errorf("ping %s reader: %w", s.dialect, err)
		}
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx share, so read helpers run inside or
// outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in one write transaction, committing when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return inTxOn(ctx, s.db, fn)
}

// inTxOn is inTx on the pool db.
func inTxOn(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return commitError(err)
	}
	return nil
}

// micros is how times are stored.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros reads a stored time back, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullMicros stores an optional time.
func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// timePtr reads an optional stored time back.
func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}
