package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// maxParams keeps every statement under both engines' bind-parameter
// limits (PostgreSQL 65535, SQLite 32766).
const maxParams = 30000

// conds collects WHERE conditions and their arguments, numbering the
// placeholders $1, $2, … in the order they are added.
type conds struct {
	where []string
	args  []any
}

// arg adds v and returns its placeholder.
func (c *conds) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

// add appends a condition built with arg.
func (c *conds) add(cond string) { c.where = append(c.where, cond) }

// sql is " WHERE a AND b" or "".
func (c *conds) sql() string {
	if len(c.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.where, " AND ")
}

// placeholders is "$from, $from+1, …" n times.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// valuesList is "($1, $2), ($3, $4)" for rows rows of cols columns, or
// "(?, ?), (?, ?)" when anonymous: SQLite looks numbered and named
// parameters up in a linear list, which makes statements with thousands of
// $N parameters quadratic to prepare and bind; plain ? is not.
func valuesList(rows, cols int, anonymous bool) string {
	var b strings.Builder
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		if anonymous {
			b.WriteString(strings.Repeat("?, ", cols-1) + "?")
		} else {
			b.WriteString(placeholders(r*cols+1, cols))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// insertRows runs head + " VALUES (…), (…)" + tail with args holding
// cols values per row, in as few statements as the parameter limits allow.
// The generated statement holds no other parameters.
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, head string, cols int, args []any, tail string) error {
	if len(args)%cols != 0 {
		return fmt.Errorf("insert rows: %d values for %d columns", len(args), cols)
	}
	chunk := (maxParams / cols) * cols
	for len(args) > 0 {
		n := min(chunk, len(args))
		q := head + " VALUES " + valuesList(n/cols, cols, s.dialect == DialectSQLite) + tail
		if _, err := tx.ExecContext(ctx, q, args[:n]...); err != nil {
			return err
		}
		args = args[n:]
	}
	return nil
}

// stringArgs converts strings for an IN list.
func stringArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
