package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// Migration 8 gives each idempotency claim a token (claim_token, see
// IdempotencyState.Token; empty for the rows before it, which no request
// holds any more) and stores each message's payload as plain columns (Payload) in
// message_payloads on both engines: the request JSON without its bodies,
// the text and the HTML. Before it, PostgreSQL kept the payload in
// messages.payload and SQLite in message_payloads.payload, either as JSON
// alone or in a private frame (frameMagic). SQL cannot read that frame, so
// this migration is written in Go; its down step writes every payload
// back as JSON alone, which the code of version 7 reads.
const payloadsVersion = 8

// frameMagic starts a framed payload: then three length-prefixed parts
// (unsigned varints): the JSON of the request without text and html, the
// text, the HTML. A JSON document never starts with a NUL byte.
const frameMagic = "\x00P\x01"

// errBadFrame: a framed payload is cut short or malformed.
var errBadFrame = errors.New("malformed framed payload")

// payloadsMigration is migration 8 for dialect.
func payloadsMigration(dialect string) *goose.Migration {
	m := payloadMigrator{dialect: dialect}
	return goose.NewGoMigration(payloadsVersion, &goose.GoFunc{RunTx: m.up}, &goose.GoFunc{RunTx: m.down})
}

// payloadMigrator runs migration 8 on one dialect.
type payloadMigrator struct{ dialect string }

// addClaimToken and dropClaimToken add and remove the claim's token.
const (
	addClaimToken  = `ALTER TABLE idempotency_keys ADD COLUMN claim_token TEXT NOT NULL DEFAULT ''`
	dropClaimToken = `ALTER TABLE idempotency_keys DROP COLUMN claim_token`
)

// createPayloads is the table of version 8 (on SQLite with BLOB for
// BYTEA). The bodies are bytes: a body may hold any character, NUL
// included, which PostgreSQL's text type refuses.
const createPayloads = `CREATE TABLE message_payloads (
	message_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
	request    TEXT NOT NULL,
	text       BYTEA NOT NULL,
	html       BYTEA NOT NULL)`

// payloadsLZ4 compresses the large columns with LZ4 where the server has
// it (see migration 4 for why); elsewhere they keep pglz.
const payloadsLZ4 = `DO $$
BEGIN
    EXECUTE 'ALTER TABLE message_payloads ALTER COLUMN request SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE message_payloads ALTER COLUMN text SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE message_payloads ALTER COLUMN html SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression not available, payloads stay pglz: %', SQLERRM;
END
$$`

// messagesPayloadLZ4 is migration 4's setting for messages.payload, put
// back by the down step.
const messagesPayloadLZ4 = `DO $$
BEGIN
    EXECUTE 'ALTER TABLE messages ALTER COLUMN payload SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    NULL;
END
$$`

// up moves every payload into the columns of version 8.
func (m payloadMigrator) up(ctx context.Context, tx *sql.Tx) error {
	from := `SELECT id, payload FROM messages WHERE id > $1 ORDER BY id LIMIT 500`
	steps := []string{addClaimToken, createPayloads, payloadsLZ4}
	insert := `INSERT INTO message_payloads (message_id, request, text, html) VALUES ($1, $2, $3, $4)`
	after := []string{`ALTER TABLE messages DROP COLUMN payload`}
	if m.dialect == DialectSQLite {
		from = `SELECT message_id, payload FROM message_payloads_framed WHERE message_id > $1 ORDER BY message_id LIMIT 500`
		steps = []string{addClaimToken, `ALTER TABLE message_payloads RENAME TO message_payloads_framed`,
			strings.ReplaceAll(createPayloads, "BYTEA", "BLOB")}
		after = []string{`DROP TABLE message_payloads_framed`}
	}
	if err := execAll(ctx, tx, steps); err != nil {
		return err
	}
	err := copyPayloads(ctx, tx, from, insert, func(stored []byte) ([]any, error) {
		p, err := unframe(stored)
		return []any{string(p.Request), []byte(p.Text), []byte(p.HTML)}, err
	})
	if err != nil {
		return err
	}
	return execAll(ctx, tx, after)
}

// down writes every payload back as the JSON of the whole request, where
// version 7 kept it.
func (m payloadMigrator) down(ctx context.Context, tx *sql.Tx) error {
	from := `SELECT message_id, request, text, html FROM message_payloads WHERE message_id > $1 ORDER BY message_id LIMIT 500`
	steps := []string{dropClaimToken, `ALTER TABLE messages ADD COLUMN payload BYTEA NOT NULL DEFAULT ''::bytea`, messagesPayloadLZ4}
	insert := `UPDATE messages SET payload = $2 WHERE id = $1`
	after := []string{`ALTER TABLE messages ALTER COLUMN payload DROP DEFAULT`, `DROP TABLE message_payloads`}
	if m.dialect == DialectSQLite {
		from = `SELECT message_id, request, text, html FROM message_payloads_plain WHERE message_id > $1 ORDER BY message_id LIMIT 500`
		steps = []string{dropClaimToken, `ALTER TABLE message_payloads RENAME TO message_payloads_plain`,
			`CREATE TABLE message_payloads (
				message_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
				payload    BLOB NOT NULL)`}
		insert = `INSERT INTO message_payloads (message_id, payload) VALUES ($1, $2)`
		after = []string{`DROP TABLE message_payloads_plain`}
	}
	if err := execAll(ctx, tx, steps); err != nil {
		return err
	}
	err := copyPayloads(ctx, tx, from, insert, nil)
	if err != nil {
		return err
	}
	return execAll(ctx, tx, after)
}

// execAll runs each statement of qs in tx.
func execAll(ctx context.Context, tx *sql.Tx, qs []string) error {
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate payloads: %w", err)
		}
	}
	return nil
}

// copyPayloads pages through the rows of from (the message id, then the
// framed payload for up, or the three columns for down, ordered by id
// after $1) and writes each with write: for up, convert turns a stored
// payload into the values after the id; for down (convert nil) the three
// columns become the JSON of the whole request.
func copyPayloads(ctx context.Context, tx *sql.Tx, from, write string, convert func([]byte) ([]any, error)) error {
	last := ""
	for {
		rows, err := readPayloadPage(ctx, tx, from, last, convert == nil)
		if err != nil || len(rows) == 0 {
			return err
		}
		for _, r := range rows {
			vals, err := r.values(convert)
			if err != nil {
				return fmt.Errorf("migrate payload of %s: %w", r.id, err)
			}
			if _, err := tx.ExecContext(ctx, write, append([]any{r.id}, vals...)...); err != nil {
				return fmt.Errorf("migrate payload of %s: %w", r.id, err)
			}
		}
		last = rows[len(rows)-1].id
	}
}

// payloadRow is one row read by copyPayloads: stored for up, p for down.
type payloadRow struct {
	id     string
	stored []byte
	p      Payload
}

// values is what copyPayloads writes after the id.
func (r payloadRow) values(convert func([]byte) ([]any, error)) ([]any, error) {
	if convert != nil {
		return convert(r.stored)
	}
	b, err := wholeRequest(r.p)
	return []any{b}, err
}

// readPayloadPage reads one page of copyPayloads' source (read fully, so
// that the transaction's connection is free to write).
func readPayloadPage(ctx context.Context, tx *sql.Tx, from, after string, columns bool) ([]payloadRow, error) {
	rs, err := tx.QueryContext(ctx, from, after)
	if err != nil {
		return nil, fmt.Errorf("migrate payloads: %w", err)
	}
	defer rs.Close()
	var out []payloadRow
	for rs.Next() {
		var r payloadRow
		dest := []any{&r.id, &r.stored}
		if columns {
			dest = []any{&r.id, &r.p.Request, &r.p.Text, &r.p.HTML}
		}
		if err := rs.Scan(dest...); err != nil {
			return nil, fmt.Errorf("migrate payloads: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("migrate payloads: %w", err)
	}
	return out, nil
}

// unframe reads a payload of version 7: framed, or JSON alone (whose
// text and html members then move to their columns).
func unframe(b []byte) (Payload, error) {
	if len(b) < len(frameMagic) || string(b[:len(frameMagic)]) != frameMagic {
		return splitRequest(b)
	}
	rest := b[len(frameMagic):]
	var parts [3][]byte
	for i := range parts {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return Payload{}, errBadFrame
		}
		parts[i], rest = rest[k:k+int(n)], rest[k+int(n):]
	}
	if len(rest) != 0 {
		return Payload{}, errBadFrame
	}
	return Payload{Request: parts[0], Text: string(parts[1]), HTML: string(parts[2])}, nil
}

// splitRequest moves the text and html members of a whole request's JSON
// to their columns. A payload that is no JSON object (the API never
// stored one) is kept as it is, so that the migration moves every row and
// sending such a message fails as it did before.
func splitRequest(b []byte) (Payload, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil || members == nil {
		return Payload{Request: b}, nil
	}
	var p Payload
	for name, dst := range map[string]*string{"text": &p.Text, "html": &p.HTML} {
		if raw, ok := members[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return Payload{}, fmt.Errorf("read request %s: %w", name, err)
			}
			delete(members, name)
		}
	}
	req, err := json.Marshal(members)
	if err != nil {
		return Payload{}, fmt.Errorf("write request JSON: %w", err)
	}
	p.Request = req
	return p, nil
}

// wholeRequest is the JSON of the whole request: p.Request with its text
// and html members put back (left out when empty, as the API does).
func wholeRequest(p Payload) ([]byte, error) {
	members := map[string]json.RawMessage{}
	if err := json.Unmarshal(p.Request, &members); err != nil || members == nil {
		return p.Request, nil // kept as it was (splitRequest)
	}
	for name, v := range map[string]string{"text": p.Text, "html": p.HTML} {
		if v == "" {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		members[name] = raw
	}
	return json.Marshal(members)
}
