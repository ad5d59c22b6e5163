package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

const suppressionColumns = "project_id, email, reason, note, created_at"

// normEmail is how suppressed addresses are keyed: trimmed, lower case.
func normEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// suppressedChunk bounds the addresses of one query (the parameter limits:
// 65,535 on PostgreSQL, 32,766 on SQLite).
const suppressedChunk = 1000

// suppressedAmong returns which of emails the project suppresses, keyed by
// lower-cased address, reading through q (a pool or a transaction) in
// chunks of suppressedChunk addresses.
func suppressedAmong(ctx context.Context, q querier, projectID string, emails []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(emails) > 0 {
		n := min(len(emails), suppressedChunk)
		if err := suppressedChunkAmong(ctx, q, projectID, emails[:n], out); err != nil {
			return nil, err
		}
		emails = emails[n:]
	}
	return out, nil
}

// suppressedChunkAmong adds the suppressed ones of emails to out.
func suppressedChunkAmong(ctx context.Context, q querier, projectID string, emails []string, out map[string]bool) error {
	args := make([]any, 0, len(emails)+1)
	args = append(args, projectID)
	for _, e := range emails {
		args = append(args, normEmail(e))
	}
	rows, err := q.QueryContext(ctx, `SELECT email FROM suppressions WHERE project_id = $1 AND email IN (`+
		placeholders(2, len(emails))+`)`, args...)
	if err != nil {
		return fmt.Errorf("suppressed among: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return fmt.Errorf("suppressed among: %w", err)
		}
		out[e] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("suppressed among: %w", err)
	}
	return nil
}

// UpsertSuppression adds an address (lower-cased) to the project's list,
// or replaces the reason and note of an existing entry while keeping its
// first CreatedAt. A zero CreatedAt becomes Now. It returns the stored row.
func (s *Store) UpsertSuppression(ctx context.Context, sp Suppression) (Suppression, error) {
	sp.Email = normEmail(sp.Email)
	if sp.ProjectID == "" || sp.Email == "" || sp.Reason == "" {
		return Suppression{}, errors.New("upsert suppression: project, email and reason are required")
	}
	now := s.now()
	if sp.CreatedAt.IsZero() {
		sp.CreatedAt = now
	}
	row := s.db.QueryRowContext(ctx, `INSERT INTO suppressions (`+suppressionColumns+`, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (project_id, email) DO UPDATE SET reason = excluded.reason, note = excluded.note,
			updated_at = excluded.updated_at
		RETURNING `+suppressionColumns,
		sp.ProjectID, sp.Email, sp.Reason, sp.Note, micros(sp.CreatedAt), micros(now))
	out, err := scanSuppression(row)
	if err != nil {
		return Suppression{}, fmt.Errorf("upsert suppression: %w", err)
	}
	return out, nil
}

// GetSuppression finds an address on the project's list, or ErrNotFound.
func (s *Store) GetSuppression(ctx context.Context, projectID, email string) (Suppression, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT `+suppressionColumns+` FROM suppressions
		WHERE project_id = $1 AND email = $2`, projectID, normEmail(email))
	sp, err := scanSuppression(row)
	if err != nil {
		return Suppression{}, fmt.Errorf("suppression: %w", notFound(err))
	}
	return sp, nil
}

// DeleteSuppression removes an address from the project's list, or
// returns ErrNotFound.
func (s *Store) DeleteSuppression(ctx context.Context, projectID, email string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM suppressions WHERE project_id = $1 AND email = $2`,
		projectID, normEmail(email))
	if err != nil {
		return fmt.Errorf("delete suppression: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("delete suppression: %w", ErrNotFound)
	}
	return nil
}

// ListSuppressions lists the project's suppressions, newest first. The
// returned cursor fetches the next page; it is "" after the last page.
func (s *Store) ListSuppressions(ctx context.Context, projectID string, f SuppressionFilter) ([]Suppression, string, error) {
	cur, ok, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	c := &conds{}
	c.add("project_id = " + c.arg(projectID))
	if f.Reason != "" {
		c.add("reason = " + c.arg(f.Reason))
	}
	if ok {
		c.add("(created_at, email) < (" + c.arg(cur.T) + ", " + c.arg(cur.K) + ")")
	}
	limit := pageLimit(f.Page)
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+suppressionColumns+` FROM suppressions`+c.sql()+
		` ORDER BY created_at DESC, email DESC LIMIT `+c.arg(limit+1), c.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list suppressions: %w", err)
	}
	defer rows.Close()
	var out []Suppression
	for rows.Next() {
		sp, err := scanSuppression(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list suppressions: %w", err)
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list suppressions: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = cursor{T: micros(out[limit-1].CreatedAt), K: out[limit-1].Email}.encode()
	}
	return out, next, nil
}

func scanSuppression(r scanner) (Suppression, error) {
	var sp Suppression
	var created int64
	if err := r.Scan(&sp.ProjectID, &sp.Email, &sp.Reason, &sp.Note, &created); err != nil {
		return Suppression{}, err
	}
	sp.CreatedAt = fromMicros(created)
	return sp, nil
}
