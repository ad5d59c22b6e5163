package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
)

// A per-connection cache of prepared SQLite statements. modernc's driver
// parses and compiles every statement handed to it through database/sql's
// Exec and Query anew (sqlite3_prepare_v2 was 7 % of mailgate's CPU in the
// SQLite delivery benchmark); only a driver Stmt keeps its compiled
// program, and reuses it after a reset. pgx keeps such a cache for
// PostgreSQL by itself. This wraps each SQLite connection so that Exec and
// Query run on a statement kept per query text, least recently used out.
//
// Written by hand: neither database/sql nor modernc.org/sqlite caches
// statements, and no maintained driver wrapper that does is served here.
// It costs a map and a list per connection and keeps the driver's
// optional interfaces (the connection's and the rows'). Measured end to
// end on SQLite (bench/e2e, 5,000 messages, Ed25519, two rounds
// alternating builds with and without it): 2,423 and 2,382 delivered/s
// against 2,051 and 1,996 in batch mode, 2,161 and 1,707 against 1,863
// and 1,366 in single mode: 16 to 25 % more with it.

// stmtCacheSize bounds the statements kept per connection. The hot
// statements are a few dozen texts; statements whose text varies with
// their size (IN lists, short multi-row VALUES) take what is left.
const stmtCacheSize = 128

// maxCachedQuery is the longest text cached. Longer ones are the multi-row
// INSERTs of a batch, whose text changes with the number of rows: they
// would crowd the hot statements out and hold large compiled programs,
// for a compile paid once per many rows anyway.
const maxCachedQuery = 8 << 10

// cachingConnector opens connections of the wrapped connector, each with
// its own statement cache.
type cachingConnector struct {
	driver.Connector
}

// Connect opens a connection and wraps it.
func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn, stmtCacheSize), nil
}

// The interfaces cachingConn passes through; modernc's connection has
// them all.
type (
	fullConn interface {
		driver.Conn
		driver.ConnBeginTx
		driver.ConnPrepareContext
		driver.ExecerContext
		driver.QueryerContext
	}
	stmtRunner interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
)

// cachingConn is a driver connection whose ExecContext and QueryContext
// run on cached prepared statements. database/sql never uses a driver
// connection from two goroutines at once, so it needs no lock.
type cachingConn struct {
	inner fullConn
	size  int
	bySQL map[string]*list.Element // of *cachedStmt
	lru   *list.List               // most recently used first
}

// cachedStmt is one prepared statement of a connection.
type cachedStmt struct {
	query string
	st    stmtRunner
	// busy is true while rows read from st are open: the statement can
	// then not run again, and a second use of the same text is prepared
	// on its own.
	busy bool
	// evicted: dropped from the cache while busy; closed when its rows are.
	evicted bool
}

// newCachingConn wraps conn. A connection without the context interfaces
// is returned as it is.
func newCachingConn(conn driver.Conn, size int) driver.Conn {
	fc, ok := conn.(fullConn)
	if !ok {
		return conn
	}
	return &cachingConn{inner: fc, size: size, bySQL: map[string]*list.Element{}, lru: list.New()}
}

// stmt returns the cached statement of query, preparing it on a miss; nil
// (and no error) when it is busy or not to be cached.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if len(query) > maxCachedQuery {
		return nil, nil
	}
	if e, ok := c.bySQL[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		return cs, nil
	}
	st, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	sr, ok := st.(stmtRunner)
	if !ok {
		_ = st.Close()
		return nil, nil
	}
	cs := &cachedStmt{query: query, st: sr}
	c.bySQL[query] = c.lru.PushFront(cs)
	for c.lru.Len() > c.size {
		c.evict(c.lru.Back())
	}
	return cs, nil
}

// evict drops e from the cache, closing its statement unless rows of it
// are still open.
func (c *cachingConn) evict(e *list.Element) {
	cs := c.lru.Remove(e).(*cachedStmt)
	delete(c.bySQL, cs.query)
	if cs.busy {
		cs.evicted = true
		return
	}
	_ = cs.st.Close()
}

// ExecContext runs query on its cached statement.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return cs.st.ExecContext(ctx, args)
}

// QueryContext runs query on its cached statement; the statement is busy
// until the rows are closed.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := cs.st.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, cs: cs}, nil
}

// Prepare, PrepareContext, Begin and BeginTx pass through: database/sql's
// own Stmt and Tx manage those.
func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

// PrepareContext passes through.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}

// Begin passes through.
//
// Deprecated: database/sql calls BeginTx.
func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx passes through.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

// Close closes every cached statement, then the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cachedStmt).st.Close())
	}
	c.lru.Init()
	clear(c.bySQL)
	errs = append(errs, c.inner.Close())
	return errors.Join(errs...)
}

// Ping passes through.
func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ResetSession passes through.
func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// IsValid passes through.
func (c *cachingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// cachedRows are rows of a cached statement: closing them frees it.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
}

// The rows' optional interfaces pass through; for rows without one, each
// answers what database/sql assumes when it is missing.

// ColumnTypeDatabaseTypeName passes through.
func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if c, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return c.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

// ColumnTypeScanType passes through.
func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if c, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return c.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

// ColumnTypeLength passes through.
func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return c.ColumnTypeLength(i)
	}
	return 0, false
}

// ColumnTypeNullable passes through.
func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return c.ColumnTypeNullable(i)
	}
	return false, false
}

// ColumnTypePrecisionScale passes through.
func (r *cachedRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return c.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

// Close closes the rows (modernc resets the statement, keeping it
// compiled) and frees the statement, closing it if it was evicted meanwhile.
func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.cs == nil {
		return err
	}
	cs := r.cs
	r.cs, cs.busy = nil, false
	if cs.evicted {
		return errors.Join(err, cs.st.Close())
	}
	return err
}
