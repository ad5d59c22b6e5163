package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

const keyColumns = "id, project_id, name, scopes, secret_hash, created_at, revoked_at"

// CreateKey stores an API key. A zero CreatedAt becomes Now; an unknown
// project is ErrNotFound and a taken id ErrConflict.
func (s *Store) CreateKey(ctx context.Context, k APIKey) error {
	if k.ID == "" || len(k.SecretHash) == 0 {
		return errors.New("create key: id and secret hash are required")
	}
	if _, err := s.ProjectByID(ctx, k.ProjectID); err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	scopes, err := json.Marshal(k.Scopes)
	if err != nil {
		return fmt.Errorf("create key %s: scopes: %w", k.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (`+keyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		k.ID, k.ProjectID, k.Name, string(scopes), k.SecretHash, micros(k.CreatedAt), nullMicros(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("create key %s: %w", k.ID, ErrConflict)
	}
	return nil
}

// KeyByID finds a key, revoked or not, or ErrNotFound.
func (s *Store) KeyByID(ctx context.Context, id string) (APIKey, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id)
	k, err := scanKey(row)
	if err != nil {
		return APIKey{}, fmt.Errorf("key %s: %w", id, notFound(err))
	}
	return k, nil
}

// ListKeys lists a project's keys, or every project's for "", oldest
// first, revoked ones included.
func (s *Store) ListKeys(ctx context.Context, projectID string) ([]APIKey, error) {
	var c conds
	if projectID != "" {
		c.add("project_id = " + c.arg(projectID))
	}
	rows, err := s.rdb.QueryContext(ctx,
		`SELECT `+keyColumns+` FROM api_keys`+c.sql()+` ORDER BY created_at, id`, c.args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// RevokeKey marks a key revoked at Now. Revoking a revoked key keeps the
// first revocation time and succeeds; an unknown id is ErrNotFound.
func (s *Store) RevokeKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, id, micros(s.now()))
	if err != nil {
		return fmt.Errorf("revoke key %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("revoke key %s: %w", id, ErrNotFound)
	}
	return nil
}

func scanKey(r scanner) (APIKey, error) {
	var k APIKey
	var scopes string
	var created int64
	var revoked sql.NullInt64
	if err := r.Scan(&k.ID, &k.ProjectID, &k.Name, &scopes, &k.SecretHash, &created, &revoked); err != nil {
		return APIKey{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return APIKey{}, fmt.Errorf("key %s scopes: %w", k.ID, err)
	}
	k.CreatedAt = fromMicros(created)
	k.RevokedAt = timePtr(revoked)
	return k, nil
}
