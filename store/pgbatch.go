package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgDivisionByZero is the SQLSTATE the batch statement raises on purpose
// when the idempotency key is no longer held (see pgBatchStatement).
const pgDivisionByZero = "22012"

// pgInvalidText is the SQLSTATE the batch statement raises on purpose, by
// casting suppressedMarker to an integer, when a recipient it checks is
// suppressed (see suppressionGuard).
const (
	pgInvalidText    = "22P02"
	suppressedMarker = "suppressed recipient"
)

// createPostgres commits a batch on PostgreSQL as ONE statement of
// data-modifying CTEs: a single statement is atomic on its own, so a
// request costs one round trip and one commit instead of BEGIN, four
// INSERTs, an UPDATE and COMMIT. ok is false when the batch is too large
// for one statement's parameters; the caller then uses a transaction.
func (s *Store) createPostgres(ctx context.Context, b *batch, idems []*IdempotencyResult, now time.Time) (ok bool, err error) {
	q, args, ok := b.pgStatement(idems, now)
	if !ok {
		return false, nil
	}
	var one int
	var guard sql.NullInt64
	err = s.db.QueryRowContext(ctx, q, args...).Scan(&one, &guard)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return true, nil
	case len(idems) > 0 && errors.As(err, &pgErr) && pgErr.Code == pgDivisionByZero:
		return true, fmt.Errorf("finish idempotency key: %w", ErrIdempotencyLost)
	case b.checkSuppressed && errors.As(err, &pgErr) && pgErr.Code == pgInvalidText &&
		strings.Contains(pgErr.Message, suppressedMarker):
		return true, ErrSuppressedRecipient
	default:
		return true, fmt.Errorf("insert messages: %w", err)
	}
}

// pgStatement builds the single-statement form of the batch. Without a
// RETURNING clause the CTEs still run to completion. When idems is not
// empty, the final SELECT divides by whether every one of those keys was
// finished, so a key that is no longer in flight aborts the whole
// statement.
func (b *batch) pgStatement(idems []*IdempotencyResult, now time.Time) (string, []any, bool) {
	total := len(b.messages) + len(b.recipients) + len(b.events) + len(b.tags) + 3 + 4*len(idems)
	for _, emails := range b.unchecked {
		total += 1 + len(emails)
	}
	if total > maxParams {
		return "", nil, false
	}
	c := &conds{args: make([]any, 0, total)}
	var ctes []string
	add := func(name, head string, cols int, vals []any, tail string) {
		if len(vals) == 0 {
			return
		}
		ctes = append(ctes, name+" AS ("+head+" VALUES "+c.rows(cols, vals)+tail+")")
	}
	add("m", insertMessage, messageInsertCols, b.messages, "")
	add("r", insertRecipient, recipientCols, b.recipients, "")
	add("e", insertEvent, eventCols, b.events, "")
	add("t", insertTag, tagCols, b.tags, " ON CONFLICT DO NOTHING")
	final := "SELECT 1"
	guard := b.suppressionGuard(c)
	if len(idems) > 0 {
		ctes = append(ctes, idemUpdate(c, idems, now))
		final = "SELECT 1 / (SELECT (count(*) = " + c.arg(len(idems)) + ")::int FROM u)"
	}
	final += ", " + guard
	if len(ctes) == 0 {
		return final, c.args, true
	}
	return "WITH " + strings.Join(ctes, ", ") + " " + final, c.args, true
}

// rows is the VALUES list of vals, cols values per row, as placeholders.
func (c *conds) rows(cols int, vals []any) string {
	rows := make([]string, 0, len(vals)/cols)
	ph := make([]string, cols)
	for r := 0; r < len(vals); r += cols {
		for i := range cols {
			ph[i] = c.arg(vals[r+i])
		}
		rows = append(rows, "("+strings.Join(ph, ", ")+")")
	}
	return strings.Join(rows, ", ")
}

// idemUpdate is the CTE u that finishes every key of idems that is still
// in flight, returning one row per key finished.
func idemUpdate(c *conds, idems []*IdempotencyResult, now time.Time) string {
	vals := make([]string, len(idems))
	for i, r := range idems {
		body := r.ResponseBody
		if body == nil {
			body = []byte{}
		}
		vals[i] = "(" + c.arg(r.KeyID) + "::text, " + c.arg(r.Key) + "::text, " +
			c.arg(r.ResponseCode) + "::int, " + c.arg(body) + "::bytea)"
	}
	return "u AS (UPDATE idempotency_keys k SET state = " + c.arg(idemDone) +
		", response_code = v.code, response_body = v.body, finished_at = " + c.arg(micros(now)) +
		" FROM (VALUES " + strings.Join(vals, ", ") + ") AS v (key_id, idem_key, code, body)" +
		" WHERE k.key_id = v.key_id AND k.idem_key = v.idem_key AND k.state = " + c.arg(idemInFlight) +
		" RETURNING 1)"
}

// suppressionGuard is the statement's second result column: NULL, or,
// when the batch checks suppressions and one of its unchecked recipients
// is on its project's list, an error (suppressedMarker cast to an
// integer) that aborts the whole statement. PostgreSQL has no RAISE in
// plain SQL, and the cast of a subquery's value runs only at execution.
// The lookup uses the suppressions primary key (project_id, email).
func (b *batch) suppressionGuard(c *conds) string {
	if len(b.unchecked) == 0 {
		return "NULL::int"
	}
	projects := slices.Sorted(maps.Keys(b.unchecked)) // stable SQL text
	terms := make([]string, len(projects))
	for i, p := range projects {
		emails := b.unchecked[p]
		ph := make([]string, len(emails))
		for j, e := range emails {
			ph[j] = c.arg(e)
		}
		terms[i] = "(project_id = " + c.arg(p) + " AND email IN (" + strings.Join(ph, ", ") + "))"
	}
	return "(SELECT '" + suppressedMarker + "' FROM suppressions WHERE " +
		strings.Join(terms, " OR ") + " LIMIT 1)::int"
}
