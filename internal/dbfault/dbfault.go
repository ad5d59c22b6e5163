// Package dbfault injects database faults for tests: a driver.Connector
// wrapper (for store.Config.WrapConnector) that, once armed, fails the
// next statement whose text holds a given string. It owns nothing else
// and is imported by tests only.
package dbfault

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
)

// Faults fails armed statements of the connections it wraps. The zero
// value is ready and disarmed; it is safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	match string // armed while not empty
	err   error
}

// Arm makes the next statement whose text holds match fail with err.
func (f *Faults) Arm(match string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.match, f.err = match, err
}

// Armed reports whether the armed fault has not fired yet.
func (f *Faults) Armed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.match != ""
}

// hit returns (once) the error query is to fail with, or nil.
func (f *Faults) hit(query string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.match == "" || !strings.Contains(query, f.match) {
		return nil
	}
	f.match = ""
	return f.err
}

// Wrap wraps c: its connections run every statement through f.
func (f *Faults) Wrap(c driver.Connector) driver.Connector { return connector{c, f} }

type connector struct {
	driver.Connector
	f *Faults
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return faultConn{conn, c.f}, nil
}

// faultConn hides its connection's QueryerContext and ExecerContext, so
// that database/sql runs every statement through PrepareContext and the
// statement wrapper sees it. The other interfaces database/sql uses pass
// through.
type faultConn struct {
	driver.Conn
	f *Faults
}

func (c faultConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return faultStmt{st, query, c.f}, nil
}

func (c faultConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c faultConn) CheckNamedValue(nv *driver.NamedValue) error {
	if nc, ok := c.Conn.(driver.NamedValueChecker); ok {
		return nc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c faultConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// faultStmt fails its query or exec when its text is armed.
type faultStmt struct {
	driver.Stmt
	query string
	f     *Faults
}

func (s faultStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.f.hit(s.query); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s faultStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.f.hit(s.query); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}
