package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// createStatements are the prepared statements of createGroup.
type createStatements struct {
	// postgres writes a whole group (createPostgresStatement);
	// suppressed reads its recipients' suppressions.
	postgres, suppressed *stmt
	// insert writes one row of each of createTables (SQLite), finish
	// finishes one idempotency key (SQLite).
	insert [numCreateTables]*stmt
	finish *stmt
}

// newCreateStatements prepares, on first use, the statements of dialect.
func newCreateStatements(db *sql.DB, dialect string) *createStatements {
	c := &createStatements{}
	if dialect == DialectPostgres {
		c.postgres = newStmt(db, createPostgresStatement())
		c.suppressed = newStmt(db, `SELECT s.project_id, s.email FROM suppressions s
			JOIN unnest($1::text[], $2::text[]) AS v (project_id, email)
			ON s.project_id = v.project_id AND s.email = v.email`)
		return c
	}
	for t, tab := range createTables {
		c.insert[t] = newStmt(db, tab.head+" VALUES ("+placeholders(1, len(tab.types))+")"+tab.tail)
	}
	c.finish = newStmt(db, `UPDATE idempotency_keys SET state = '`+idemDone+`', response_code = $4,
			response_body = $5, finished_at = $6
		WHERE key_id = $1 AND idem_key = $2 AND claim_token = $3 AND state = '`+idemInFlight+`'`)
	return c
}

// prepareSQLite prepares the SQLite statements before a transaction
// takes the pool's one connection (preparing inside it would wait for
// that connection forever).
func (c *createStatements) prepareSQLite(ctx context.Context) error {
	for _, st := range append(c.insert[:], c.finish) {
		if _, err := st.prepared(ctx); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
	}
	return nil
}

// close releases the statements.
func (c *createStatements) close() {
	for _, st := range append(c.insert[:], c.postgres, c.suppressed, c.finish) {
		if st != nil {
			_ = st.close()
		}
	}
}

// createPostgresStatement writes a group on PostgreSQL in ONE statement,
// atomic on its own: the idempotency keys to finish ($1…$5, one array
// element per key) are locked if their claims are still held, and only
// when all of them are does anything get written; its one row says
// whether they were. The rows of each table come as one array per column
// (unnest), so the text is the same for any group size.
func createPostgresStatement() string {
	var b strings.Builder
	b.WriteString(`WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bytea[])
			AS k (key_id, idem_key, token, code, body)),
		held AS (SELECT count(*) = (SELECT count(*) FROM k) AS ok FROM (SELECT 1 FROM idempotency_keys i
			JOIN k ON i.key_id = k.key_id AND i.idem_key = k.idem_key AND i.claim_token = k.token
			WHERE i.state = '` + idemInFlight + `' FOR UPDATE OF i) AS x),
		u AS (UPDATE idempotency_keys i SET state = '` + idemDone + `', response_code = k.code,
			response_body = k.body, finished_at = $6
			FROM k WHERE i.key_id = k.key_id AND i.idem_key = k.idem_key AND (SELECT ok FROM held))`)
	n := 6
	for t, tab := range createTables {
		arrays := make([]string, len(tab.types))
		for c, typ := range tab.types {
			n++
			arrays[c] = fmt.Sprintf("$%d::%s[]", n, typ)
		}
		fmt.Fprintf(&b, ",\n\t\tt%d AS (%s SELECT * FROM unnest(%s) WHERE (SELECT ok FROM held)%s)",
			t, tab.head, strings.Join(arrays, ", "), tab.tail)
	}
	b.WriteString("\n\tSELECT ok FROM held")
	return b.String()
}

// createPostgres reads the suppressions of msgs' recipients, then writes
// the group with createPostgresStatement. A suppression added between the
// two is as if added just after the commit.
func (s *Store) createPostgres(ctx context.Context, msgs []NewMessage, keys []keyFinish) ([]Created, error) {
	suppressed, err := s.suppressedPostgres(ctx, msgs)
	if err != nil {
		return nil, err
	}
	p, err := s.planCreate(msgs, keys, suppressed)
	if err != nil {
		return nil, err
	}
	st, err := s.creates.postgres.prepared(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert messages: %w", err)
	}
	var held bool
	if err := st.QueryRowContext(ctx, p.postgresArgs(micros(s.now()))...).Scan(&held); err != nil {
		// The statement is its own transaction: its error is a COMMIT's.
		return nil, commitError(fmt.Errorf("insert messages: %w", err))
	}
	if !held {
		return nil, fmt.Errorf("finish idempotency key: %w", ErrIdempotencyLost)
	}
	return p.created, nil
}

// suppressedPostgres reads which recipients of msgs are suppressed.
func (s *Store) suppressedPostgres(ctx context.Context, msgs []NewMessage) (map[projectEmail]bool, error) {
	check := toCheck(msgs)
	out := map[projectEmail]bool{}
	if len(check) == 0 {
		return out, nil
	}
	projects, emails := make([]string, len(check)), make([]string, len(check))
	for i, pe := range check {
		projects[i], emails[i] = pe.project, pe.email
	}
	st, err := s.creates.suppressed.prepared(ctx)
	if err != nil {
		return nil, fmt.Errorf("check suppressions: %w", err)
	}
	rows, err := st.QueryContext(ctx, projects, emails)
	if err != nil {
		return nil, fmt.Errorf("check suppressions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pe projectEmail
		if err := rows.Scan(&pe.project, &pe.email); err != nil {
			return nil, fmt.Errorf("check suppressions: %w", err)
		}
		out[pe] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check suppressions: %w", err)
	}
	return out, nil
}

// postgresArgs are createPostgresStatement's arguments.
func (p *createPlan) postgresArgs(now int64) []any {
	n := len(p.keys)
	ids, keys, tokens, codes, bodies := make([]string, n), make([]string, n), make([]string, n), make([]int32, n), make([][]byte, n)
	for i, k := range p.keys {
		ids[i], keys[i], tokens[i], codes[i], bodies[i] = k.keyID, k.key, k.token, int32(k.code), k.body
	}
	args := []any{ids, keys, tokens, codes, bodies, now}
	for t, tab := range createTables {
		args = append(args, columns(p.rows[t], tab.types)...)
	}
	return args
}

// columns turns rows (a value per column of types per row: a string for
// text, []byte for bytea, an int64 otherwise, nil for NULL) into one
// array per column.
func columns(rows []any, types []string) []any {
	cols := len(types)
	n := len(rows) / cols
	out := make([]any, cols)
	for c, typ := range types {
		if typ == "bytea" {
			col := make([][]byte, n)
			for r := range col {
				col[r], _ = rows[r*cols+c].([]byte)
			}
			out[c] = col
			continue
		}
		if typ == "text" {
			col := make([]*string, n)
			for r := range col {
				if v, ok := rows[r*cols+c].(string); ok {
					col[r] = &v
				}
			}
			out[c] = col
			continue
		}
		col := make([]*int64, n)
		for r := range col {
			if v, ok := rows[r*cols+c].(int64); ok {
				col[r] = &v
			}
		}
		out[c] = col
	}
	return out
}

// createSQLite writes a group on SQLite in one transaction, which reads
// the suppressions of its recipients first.
func (s *Store) createSQLite(ctx context.Context, msgs []NewMessage, keys []keyFinish) ([]Created, error) {
	if err := s.creates.prepareSQLite(ctx); err != nil {
		return nil, err
	}
	var created []Created
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		suppressed, err := s.suppressedIn(ctx, tx, msgs)
		if err != nil {
			return err
		}
		plan, err := s.planCreate(msgs, keys, suppressed)
		if err != nil {
			return err
		}
		created = plan.created
		return s.writeSQLite(ctx, tx, plan)
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

// suppressedIn reads, inside tx, which recipients of msgs are suppressed
// (SQLite: per project, suppressedAmong).
func (s *Store) suppressedIn(ctx context.Context, tx *sql.Tx, msgs []NewMessage) (map[projectEmail]bool, error) {
	byProject := map[string][]string{}
	for _, pe := range toCheck(msgs) {
		byProject[pe.project] = append(byProject[pe.project], pe.email)
	}
	out := map[projectEmail]bool{}
	for project, emails := range byProject {
		found, err := suppressedAmong(ctx, tx, project, emails)
		if err != nil {
			return nil, err
		}
		for e := range found {
			out[projectEmail{project, e}] = true
		}
	}
	return out, nil
}

// writeSQLite finishes the plan's keys and writes its rows inside tx, one
// prepared single-row statement per row.
func (s *Store) writeSQLite(ctx context.Context, tx *sql.Tx, p *createPlan) error {
	now := micros(s.now())
	for _, k := range p.keys {
		st, err := s.creates.finish.in(ctx, tx)
		if err != nil {
			return fmt.Errorf("finish idempotency key: %w", err)
		}
		res, err := st.ExecContext(ctx, k.keyID, k.key, k.token, k.code, k.body, now)
		if err != nil {
			return fmt.Errorf("finish idempotency key: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("finish idempotency key: %w", ErrIdempotencyLost)
		}
	}
	for t, tab := range createTables {
		if err := s.insertEach(ctx, tx, s.creates.insert[t], len(tab.types), p.rows[t]); err != nil {
			return err
		}
	}
	return nil
}

// insertEach runs st once per row of rows (cols values each).
func (s *Store) insertEach(ctx context.Context, tx *sql.Tx, st *stmt, cols int, rows []any) error {
	if len(rows) == 0 {
		return nil
	}
	in, err := st.in(ctx, tx)
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	for r := 0; r < len(rows); r += cols {
		if _, err := in.ExecContext(ctx, rows[r:r+cols]...); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	return nil
}
