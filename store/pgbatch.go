package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgDivisionByZero is the SQLSTATE the batch statement raises on purpose
// when the idempotency key is no longer held (see pgBatchStatement).
const pgDivisionByZero = "22012"

// createPostgres commits a batch on PostgreSQL as ONE statement of
// data-modifying CTEs: a single statement is atomic on its own, so a
// request costs one round trip and one commit instead of BEGIN, four
// INSERTs, an UPDATE and COMMIT. ok is false when the batch is too large
// for one statement's parameters; the caller then uses a transaction.
func (s *Store) createPostgres(ctx context.Context, b *batch, idem *IdempotencyResult, now time.Time) (ok bool, err error) {
	q, args, ok := b.pgStatement(idem, now)
	if !ok {
		return false, nil
	}
	var one int
	err = s.db.QueryRowContext(ctx, q, args...).Scan(&one)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return true, nil
	case idem != nil && errors.As(err, &pgErr) && pgErr.Code == pgDivisionByZero:
		return true, fmt.Errorf("finish idempotency key: %w", ErrIdempotencyLost)
	default:
		return true, fmt.Errorf("insert messages: %w", err)
	}
}

// pgStatement builds the single-statement form of the batch. Without a
// RETURNING clause the CTEs still run to completion. When idem is set, the
// final SELECT divides by the number of idempotency rows finished, so a
// key that is no longer in flight aborts the whole statement.
func (b *batch) pgStatement(idem *IdempotencyResult, now time.Time) (string, []any, bool) {
	total := len(b.messages) + len(b.recipients) + len(b.events) + len(b.tags) + 7
	if total > maxParams {
		return "", nil, false
	}
	c := &conds{args: make([]any, 0, total)}
	var ctes []string
	add := func(name, head string, cols int, vals []any, tail string) {
		if len(vals) == 0 {
			return
		}
		rows := make([]string, 0, len(vals)/cols)
		for r := 0; r < len(vals); r += cols {
			ph := make([]string, cols)
			for i := range cols {
				ph[i] = c.arg(vals[r+i])
			}
			rows = append(rows, "("+strings.Join(ph, ", ")+")")
		}
		ctes = append(ctes, name+" AS ("+head+" VALUES "+strings.Join(rows, ", ")+tail+")")
	}
	add("m", insertMessage, messageInsertCols, b.messages, "")
	add("r", insertRecipient, recipientCols, b.recipients, "")
	add("e", insertEvent, eventCols, b.events, "")
	add("t", insertTag, tagCols, b.tags, " ON CONFLICT DO NOTHING")
	final := "SELECT 1"
	if idem != nil {
		body := idem.ResponseBody
		if body == nil {
			body = []byte{}
		}
		ctes = append(ctes, "u AS (UPDATE idempotency_keys SET state = "+c.arg(idemDone)+
			", response_code = "+c.arg(idem.ResponseCode)+", response_body = "+c.arg(body)+
			", finished_at = "+c.arg(micros(now))+" WHERE key_id = "+c.arg(idem.KeyID)+
			" AND idem_key = "+c.arg(idem.Key)+" AND state = "+c.arg(idemInFlight)+" RETURNING 1)")
		final = "SELECT 1 / (SELECT count(*)::int FROM u)"
	}
	if len(ctes) == 0 {
		return final, nil, true
	}
	return "WITH " + strings.Join(ctes, ", ") + " " + final, c.args, true
}
