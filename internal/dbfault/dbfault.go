// Package dbfault wraps a database/sql driver connector so that a test can
// make the database fail below database/sql: go down (new connections
// refused, open ones broken), fail one statement, or lose the answer to one
// commit (a transaction's COMMIT, or a statement outside a transaction,
// which commits on its own) after the database committed it. It is for
// tests only (store.Config.WrapConnector).
package dbfault

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// Faults is the set of faults armed on the connections of the connectors
// it wraps. Its methods are safe for concurrent use.
type Faults struct {
	mu   sync.Mutex
	down bool
	// stmt fails the next statement whose SQL contains stmtMatch.
	stmtMatch string
	stmtErr   error
	// commit loses the answer to the next commit of a statement
	// containing commitMatch.
	commitMatch string
	commitErr   error
	fired       int
	// ran are the statements run so far, for Ran.
	ran []string
}

// Wrap is a store.Config.WrapConnector.
func (f *Faults) Wrap(c driver.Connector) driver.Connector { return &connector{Connector: c, f: f} }

// SetDown takes the database away (new connections are refused and open
// ones fail with driver.ErrBadConn) or brings it back.
func (f *Faults) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// FailStatement makes the next statement whose SQL contains match fail
// with err without running.
func (f *Faults) FailStatement(match string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stmtMatch, f.stmtErr = match, err
}

// LoseCommit loses the answer to the next commit of a statement whose SQL
// contains match: in a transaction, its COMMIT commits and then fails with
// err; outside one, the statement runs to its end and then fails with err,
// as a connection lost before the answer arrived.
func (f *Faults) LoseCommit(match string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commitMatch, f.commitErr = match, err
}

// Fired is how many armed faults (statement or commit) have happened.
func (f *Faults) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// Ran is how many statements run so far (faults or none) contained
// match.
func (f *Faults) Ran(match string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, q := range f.ran {
		if strings.Contains(q, match) {
			n++
		}
	}
	return n
}

func (f *Faults) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

// statement is called before a statement runs: whether the query touches
// the armed commit, and its error if one is armed for it.
func (f *Faults) statement(query string) (touches bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return false, driver.ErrBadConn
	}
	f.ran = append(f.ran, query)
	if f.stmtMatch != "" && strings.Contains(query, f.stmtMatch) {
		err := f.stmtErr
		f.stmtMatch, f.stmtErr = "", nil
		f.fired++
		return false, err
	}
	return f.commitMatch != "" && strings.Contains(query, f.commitMatch), nil
}

// lostCommit returns the armed commit error, once.
func (f *Faults) lostCommit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.commitMatch == "" {
		return nil
	}
	err := f.commitErr
	f.commitMatch, f.commitErr = "", nil
	f.fired++
	return err
}

type connector struct {
	driver.Connector
	f *Faults
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.f.isDown() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	inner, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{inner: inner, f: c.f}, nil
}

// conn wraps a driver connection; touched marks a transaction that ran a
// statement matching the armed commit.
type conn struct {
	inner   driver.Conn
	f       *Faults
	inTx    bool
	touched bool
}

// check is called before a statement runs: whether it commits on its own
// (outside a transaction) with its answer to be lost, and its error when
// one is armed.
func (c *conn) check(query string) (lost bool, err error) {
	touches, err := c.f.statement(query)
	if touches && !c.inTx {
		return true, err
	}
	c.touched = c.touched || touches
	return false, err
}

// loseAnswer finishes a statement that committed on its own (its rows
// read to the end) and returns the armed commit error in its place.
func (c *conn) loseAnswer(rows driver.Rows, err error) error {
	if err != nil {
		return err
	}
	if rows != nil {
		dest := make([]driver.Value, len(rows.Columns()))
		for rows.Next(dest) == nil {
		}
		_ = rows.Close()
	}
	return c.f.lostCommit()
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.f.isDown() {
		return nil, driver.ErrBadConn
	}
	var st driver.Stmt
	var err error
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &stmt{inner: st, c: c, query: query}, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	lost, err := c.check(query)
	if err != nil {
		return nil, err
	}
	res, err := e.ExecContext(ctx, query, args)
	if lost {
		return nil, c.loseAnswer(nil, err)
	}
	return res, err
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	lost, err := c.check(query)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, query, args)
	if lost {
		return nil, c.loseAnswer(rows, err)
	}
	return rows, err
}

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.f.isDown() {
		return nil, driver.ErrBadConn
	}
	b, ok := c.inner.(driver.ConnBeginTx)
	if !ok {
		return nil, errors.New("dbfault: the wrapped driver has no BeginTx")
	}
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx, c.touched = true, false
	return &faultTx{inner: tx, c: c}, nil
}

func (c *conn) Close() error { return c.inner.Close() }

// Conn is the pgx connection beneath, for code that sends pipelines on it
// (the store's delivery writer on PostgreSQL: those bypass the faults);
// nil when the wrapped driver is not pgx's.
func (c *conn) Conn() *pgx.Conn {
	if pc, ok := c.inner.(interface{ Conn() *pgx.Conn }); ok {
		return pc.Conn()
	}
	return nil
}

// CheckNamedValue lets the driver convert arguments as it would unwrapped.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *conn) Ping(ctx context.Context) error {
	if c.f.isDown() {
		return driver.ErrBadConn
	}
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if c.f.isDown() {
		return driver.ErrBadConn
	}
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if c.f.isDown() {
		return false
	}
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// faultTx is a transaction whose COMMIT may lose its answer.
type faultTx struct {
	inner driver.Tx
	c     *conn
}

func (t *faultTx) Commit() error {
	touched := t.c.touched
	t.c.inTx, t.c.touched = false, false
	if t.c.f.isDown() { // the connection broke before the COMMIT left
		_ = t.inner.Rollback()
		return driver.ErrBadConn
	}
	if err := t.inner.Commit(); err != nil || !touched {
		return err
	}
	return t.c.f.lostCommit()
}

func (t *faultTx) Rollback() error {
	t.c.inTx, t.c.touched = false, false
	return t.inner.Rollback()
}

// stmt is a prepared statement whose executions are checked as the
// connection's statements are.
type stmt struct {
	inner driver.Stmt
	c     *conn
	query string
}

func (s *stmt) Close() error  { return s.inner.Close() }
func (s *stmt) NumInput() int { return s.inner.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	e, ok := s.inner.(driver.StmtExecContext)
	if !ok {
		return nil, errors.New("dbfault: the driver's statements lack ExecContext")
	}
	lost, err := s.c.check(s.query)
	if err != nil {
		return nil, err
	}
	res, err := e.ExecContext(ctx, args)
	if lost {
		return nil, s.c.loseAnswer(nil, err)
	}
	return res, err
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.inner.(driver.StmtQueryContext)
	if !ok {
		return nil, errors.New("dbfault: the driver's statements lack QueryContext")
	}
	lost, err := s.c.check(s.query)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, args)
	if lost {
		return nil, s.c.loseAnswer(rows, err)
	}
	return rows, err
}

// named turns positional arguments into named ones (ordinals from 1).
func named(args []driver.Value) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, v := range args {
		out[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return out
}
