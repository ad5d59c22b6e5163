package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

const suppressionColumns = "project_id, email, reason, note, created_at"

// normEmail is how suppressed addresses are keyed: trimmed, lower case.
func normEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// likeEscaper escapes LIKE's wildcards (and its escape character) so a
// search matches them literally.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

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
	out, err := upsertSuppressions(ctx, s.db, []Suppression{sp}, s.now())
	if err != nil {
		return Suppression{}, fmt.Errorf("upsert suppression: %w", err)
	}
	return out[0], nil
}

// SuppressionImport is what ImportSuppressions did.
type SuppressionImport struct {
	// Added counts addresses that were not on the list.
	Added int
	// Updated counts addresses already on the list whose reason and note
	// were replaced.
	Updated int
}

// importChunk is the rows of one INSERT (6 parameters each, well within
// the parameter limits of both databases).
const importChunk = 500

// ImportSuppressions upserts every entry of list into the project's list,
// as UpsertSuppression does one, in one transaction: all are written or
// none. An address given more than once (after lower-casing) counts once,
// with its last entry's reason and note.
func (s *Store) ImportSuppressions(ctx context.Context, projectID string, list []Suppression) (SuppressionImport, error) {
	rows := lastPerEmail(projectID, list)
	emails := make([]string, len(rows))
	for i, sp := range rows {
		emails[i] = sp.Email
	}
	var res SuppressionImport
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		existing, err := suppressedAmong(ctx, tx, projectID, emails)
		if err != nil {
			return err
		}
		for chunk := range slices.Chunk(rows, importChunk) {
			if _, err := upsertSuppressions(ctx, tx, chunk, now); err != nil {
				return err
			}
		}
		res = SuppressionImport{Added: len(rows) - len(existing), Updated: len(existing)}
		return nil
	})
	if err != nil {
		return SuppressionImport{}, fmt.Errorf("import suppressions: %w", err)
	}
	return res, nil
}

// lastPerEmail is list with every entry's project set and email
// normalised, keeping only the last entry of each address, in the order
// of their first appearance.
func lastPerEmail(projectID string, list []Suppression) []Suppression {
	at := map[string]int{}
	var out []Suppression
	for _, sp := range list {
		sp.ProjectID, sp.Email = projectID, normEmail(sp.Email)
		if i, ok := at[sp.Email]; ok {
			out[i] = sp
			continue
		}
		at[sp.Email] = len(out)
		out = append(out, sp)
	}
	return out
}

// upsertSuppressions is the one statement that adds suppressions on
// request (the API's one, an import's many): each row inserted, or an
// existing entry's reason and note replaced, keeping its first
// created_at; a zero CreatedAt becomes now. The addresses of list must be
// distinct after normalisation (one statement cannot update a row twice).
func upsertSuppressions(ctx context.Context, q querier, list []Suppression, now time.Time) ([]Suppression, error) {
	values := make([]string, len(list))
	args := make([]any, 0, 6*len(list))
	for i, sp := range list {
		sp.Email = normEmail(sp.Email)
		if sp.ProjectID == "" || sp.Email == "" || sp.Reason == "" {
			return nil, errors.New("project, email and reason are required")
		}
		if sp.CreatedAt.IsZero() {
			sp.CreatedAt = now
		}
		values[i] = "(" + placeholders(6*i+1, 6) + ")"
		args = append(args, sp.ProjectID, sp.Email, sp.Reason, sp.Note, micros(sp.CreatedAt), micros(now))
	}
	rows, err := q.QueryContext(ctx, `INSERT INTO suppressions (`+suppressionColumns+`, updated_at)
		VALUES `+strings.Join(values, ", ")+`
		ON CONFLICT (project_id, email) DO UPDATE SET reason = excluded.reason, note = excluded.note,
			updated_at = excluded.updated_at
		RETURNING `+suppressionColumns, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]Suppression, 0, len(list))
	for rows.Next() {
		sp, err := scanSuppression(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, rows.Err()
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
	if f.Search != "" {
		c.add("email LIKE " + c.arg("%"+likeEscaper.Replace(normEmail(f.Search))+"%") + ` ESCAPE '\'`)
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
