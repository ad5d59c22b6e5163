package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmt is a statement prepared once on its pool, on first use (the
// tables exist only after MigrateUp); a preparation that failed is tried
// again on the next use. database/sql then prepares it once per connection and reuses
// it; in a transaction, use it through in.
type stmt struct {
	db    *sql.DB
	query string

	mu sync.Mutex
	st *sql.Stmt
}

// newStmt is a statement of query on db, prepared on first use.
func newStmt(db *sql.DB, query string) *stmt { return &stmt{db: db, query: query} }

// prepared returns the prepared statement, preparing it if need be.
func (s *stmt) prepared(ctx context.Context) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		return s.st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	s.st = st
	return st, nil
}

// in returns the statement bound to tx.
func (s *stmt) in(ctx context.Context, tx *sql.Tx) (*sql.Stmt, error) {
	st, err := s.prepared(ctx)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st), nil
}

// close releases the statement.
func (s *stmt) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return nil
	}
	err := s.st.Close()
	s.st = nil
	return err
}
