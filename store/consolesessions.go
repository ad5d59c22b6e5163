package store

import (
	"context"
	"fmt"
	"time"
)

// ConsoleSession is a signed-in console browser (package console). Only
// the hash of the session id is stored; the id itself lives in the
// browser's cookie.
type ConsoleSession struct {
	// IDHash is the hex SHA-256 of the session id.
	IDHash string
	// KeyID is the API key that signed in; the console checks it on every
	// request, so revoking the key ends the session.
	KeyID string
	// ProjectID is the project the console shows: the key's own, or the
	// one an admin key switched to.
	ProjectID string
	// CreatedAt bounds the session's absolute lifetime.
	CreatedAt time.Time
	// LastSeenAt bounds its idle lifetime.
	LastSeenAt time.Time
}

const consoleSessionColumns = "id_hash, key_id, project_id, created_at, last_seen_at"

// CreateConsoleSession stores a new session.
func (s *Store) CreateConsoleSession(ctx context.Context, cs ConsoleSession) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO console_sessions (`+consoleSessionColumns+`)
		VALUES ($1, $2, $3, $4, $5)`,
		cs.IDHash, cs.KeyID, cs.ProjectID, micros(cs.CreatedAt), micros(cs.LastSeenAt))
	if err != nil {
		return fmt.Errorf("create console session: %w", err)
	}
	return nil
}

// ConsoleSessionByHash finds a session by the hash of its id, or
// ErrNotFound. It does not judge expiry: the console does, with its clock.
func (s *Store) ConsoleSessionByHash(ctx context.Context, idHash string) (ConsoleSession, error) {
	var cs ConsoleSession
	var created, seen int64
	err := s.rdb.QueryRowContext(ctx, `SELECT `+consoleSessionColumns+` FROM console_sessions
		WHERE id_hash = $1`, idHash).Scan(&cs.IDHash, &cs.KeyID, &cs.ProjectID, &created, &seen)
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("console session: %w", notFound(err))
	}
	cs.CreatedAt, cs.LastSeenAt = fromMicros(created), fromMicros(seen)
	return cs, nil
}

// TouchConsoleSession records activity at at (the idle expiry counts
// from it).
func (s *Store) TouchConsoleSession(ctx context.Context, idHash string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1`,
		idHash, micros(at))
	if err != nil {
		return fmt.Errorf("touch console session: %w", err)
	}
	return nil
}

// SetConsoleSessionProject changes the project a session shows.
func (s *Store) SetConsoleSessionProject(ctx context.Context, idHash, projectID string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET project_id = $2 WHERE id_hash = $1`,
		idHash, projectID)
	if err != nil {
		return fmt.Errorf("set console session project: %w", err)
	}
	return nil
}

// DeleteConsoleSession ends a session; an unknown one is not an error.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("delete console session: %w", err)
	}
	return nil
}

// DeleteExpiredConsoleSessions deletes the sessions idle since before
// idleBefore or created before createdBefore, and says how many.
func (s *Store) DeleteExpiredConsoleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2`,
		micros(idleBefore), micros(createdBefore))
	if err != nil {
		return 0, fmt.Errorf("delete expired console sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired console sessions: %w", err)
	}
	return n, nil
}
