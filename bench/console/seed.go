package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/mailgate/mailgate/store"
)

// otherProjectID is the second project the seed fills (a tenth of the
// rows of the default project), so that the console's project condition
// has rows to skip.
const otherProjectID = "00000000-0000-7000-8000-0000000000b2"

// The values the measured pages filter by; the seed writes matching rows.
const (
	// busyTag is on about 5 % of the messages, rareTag on about 0.1 %.
	busyTag = "password-reset"
	rareTag = "account-deletion"
	// personRecipient gets a handful of messages, archiveRecipient is
	// copied on about 15 % of them.
	personRecipient  = "user4242@gmail.example"
	archiveRecipient = "archive@shop.example"
	// smallDomain sends about 2 % of the messages.
	smallDomain = "alerts.shop.example"
	// queuedTail is how many of the newest messages are still queued
	// (about 300 of the default project).
	queuedTail = 330
)

// share is one choice of a weighted pick; weights are per 10,000.
type share struct {
	value  string
	weight int
}

// The skewed distributions of the seed, per 10,000 messages.
var (
	statusShares = []share{{store.StatusDeferred, 150}, {store.StatusFailed, 100}, {store.StatusBounced, 250},
		{store.StatusComplained, 10}, {store.StatusSent, 9490}}
	domainShares = []share{{"mail.shop.example", 7000}, {"news.shop.example", 1500}, {"billing.shop.example", 800},
		{"support.shop.example", 400}, {smallDomain, 200}, {"jobs.shop.example", 100}}
	// tagShares picks a message's first tag (70 % have one) and, with
	// another draw, its second (25 %).
	tagShares = []share{{"order", 3000}, {"receipt", 1900}, {"newsletter", 1200}, {"shipping", 950},
		{busyTag, 550}, {"welcome", 470}, {"invoice", 400}, {"promo", 330}, {"digest", 270}, {"reminder", 200},
		{"survey", 160}, {"alert", 130}, {"verification", 110}, {"cart", 90}, {"review", 70}, {"referral", 55},
		{"birthday", 45}, {"loyalty", 35}, {"security", 25}, {rareTag, 10}}
	subjectShares = []share{{"'Your order #' || s.g || ' has shipped'", 3500},
		{"'Receipt for your purchase of ' || (s.x2 % 500) || '.00 EUR'", 2500},
		{"'Reset your password'", 1000}, {"'This week at Shop: new arrivals, and ' || (s.x3 % 40) || ' deals picked for you'", 2000},
		{"'Welcome to Shop, customer ' || (s.x2 % 400000)", 1000}}
)

// seedSQL builds the seeding statements of one dialect.
type seedSQL struct{ dialect string }

// numbers is a FROM item yielding i = 1…n as s.i.
func (q seedSQL) numbers(n int) string {
	if q.dialect == store.DialectPostgres {
		return fmt.Sprintf("generate_series(1, %d) AS s (i)", n)
	}
	return fmt.Sprintf("(WITH RECURSIVE r (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < %d) SELECT i FROM r) AS s", n)
}

// hex is expr as width lower-case hex digits.
func (q seedSQL) hex(expr string, width int) string {
	if q.dialect == store.DialectPostgres {
		return fmt.Sprintf("lpad(to_hex(%s), %d, '0')", expr, width)
	}
	return fmt.Sprintf("printf('%%0%dx', %s)", width, expr)
}

// least is the smaller of two integers.
func (q seedSQL) least(a, b string) string {
	if q.dialect == store.DialectPostgres {
		return "LEAST(" + a + ", " + b + ")"
	}
	return "min(" + a + ", " + b + ")"
}

// mix is a well-spread 24-bit number drawn from g with multiplier m: the
// upper bits of a multiplicative hash (the lower ones repeat g's).
func mix(g string, m uint32) string {
	return fmt.Sprintf("((%s * %d) %% 4294967296 / 256)", g, m)
}

// pick is a CASE choosing a value of shares by bucket (0…9999); a value
// is an SQL expression, quoted when quote is set. The weights of shares
// add up to 10,000.
func pick(bucket string, shares []share, quote bool) string {
	total := 0
	for _, s := range shares {
		total += s.weight
	}
	if total != 10000 {
		panic(fmt.Sprintf("shares weigh %d, not 10000: %v", total, shares)) // a mistake in the tables above
	}
	var b strings.Builder
	b.WriteString("CASE")
	upTo := 0
	for i, s := range shares {
		v := s.value
		if quote {
			v = "'" + v + "'"
		}
		upTo += s.weight
		if i == len(shares)-1 {
			fmt.Fprintf(&b, " ELSE %s END", v)
			break
		}
		fmt.Fprintf(&b, " WHEN %s < %d THEN %s", bucket, upTo, v)
	}
	return b.String()
}

// plan is the statement filling bench_seed with n messages in time
// order, every eleventh of the second project: per message its id, time
// and the draws every later statement reads.
func (q seedSQL) plan(n int, start, span int64) string {
	created := fmt.Sprintf("(%d + s.i * %d / %d)", start, span, n)
	g := "CAST(s.i AS BIGINT)"
	ms := created + " / 1000"
	id := q.hex(ms+" / 65536", 8) + " || '-' || " + q.hex(ms+" % 65536", 4) + " || '-7000-8000-' || " + q.hex(g, 12)
	tag2 := pick("(d.x5 / 7 % 10000)", tagShares, true)
	return `INSERT INTO bench_seed (i, g, id, project_id, created, x1, x2, x3, x4, x5, status, nrec, domain, tag1, tag2, variant)
		SELECT d.i, d.g, d.id, CASE WHEN d.i % 11 = 0 THEN '` + otherProjectID + `' ELSE '` + store.DefaultProjectID + `' END,
			d.created, d.x1, d.x2, d.x3, d.x4, d.x5,
			CASE WHEN d.i > ` + fmt.Sprint(n-queuedTail) + ` THEN 'queued' ELSE ` + pick("(d.x1 % 10000)", statusShares, true) + ` END,
			CASE WHEN d.x2 % 100 < 15 THEN 2 ELSE 1 END,
			CASE WHEN d.i % 11 = 0 THEN 'mail.other.example' ELSE ` + pick("(d.x3 % 10000)", domainShares, true) + ` END,
			CASE WHEN d.x4 % 100 < 70 THEN ` + pick("(d.x4 / 100 % 10000)", tagShares, true) + ` END,
			CASE WHEN d.x5 % 100 < 25 THEN ` + tag2 + ` END,
			CASE WHEN d.x1 / 10000 % 100 < 8 THEN 'd' WHEN d.x1 / 10000 % 100 < 9 THEN 'r' ELSE '' END
		FROM (SELECT s.i, ` + g + ` AS g, ` + id + ` AS id, ` + created + ` AS created,
			` + mix(g, 2654435761) + ` AS x1, ` + mix(g, 2246822519) + ` AS x2, ` + mix(g, 3266489917) + ` AS x3,
			` + mix(g, 668265263) + ` AS x4, ` + mix(g, 374761393) + ` AS x5
			FROM ` + q.numbers(n) + `) AS d`
}

// The event chain of a recipient: slot 0 is message.queued, slots 1 and 2
// follow by status and variant ("d": deferred once before it was sent,
// "r": the recipient replied).
const (
	slot1 = `CASE s.status WHEN 'queued' THEN NULL WHEN 'deferred' THEN 'message.deferred'
		WHEN 'failed' THEN 'message.failed' WHEN 'sent' THEN CASE s.variant WHEN 'd' THEN 'message.deferred' ELSE 'message.sent' END
		ELSE 'message.sent' END`
	slot2 = `CASE s.status WHEN 'bounced' THEN 'message.bounced' WHEN 'complained' THEN 'message.complained'
		WHEN 'sent' THEN CASE s.variant WHEN 'd' THEN 'message.sent' WHEN 'r' THEN 'message.replied' END END`
	// slots is the number of slots a message's recipients use.
	slots = `CASE WHEN s.status = 'queued' THEN 1 WHEN s.status IN ('bounced', 'complained')
		OR s.status = 'sent' AND s.variant IN ('d', 'r') THEN 3 ELSE 2 END`
	sentData     = `'{"relay":"mx.relay.example:25","smtp_code":250,"smtp_response":"250 2.0.0 Ok: queued as Q' || s.g || '"}'`
	deferredData = `'{"relay":"mx.relay.example:25","smtp_code":451,"enhanced_code":"4.7.1","smtp_response":"451 4.7.1 Greylisted, please try again later"}'`
	failedData   = `'{"relay":"mx.relay.example:25","smtp_code":550,"enhanced_code":"5.1.1","smtp_response":"550 5.1.1 User unknown","reason":"mailbox_unknown"}'`
	bouncedData  = `CASE WHEN s.x5 % 10 < 7 THEN '{"type":"hard","reason":"userunknown","status":"5.1.1","diagnostic":"smtp; 550 5.1.1 The email account that you tried to reach does not exist","reply_code":550,"rule":"user-unknown","authenticated":true}'
		ELSE '{"type":"soft","reason":"mailboxfull","status":"4.2.2","diagnostic":"smtp; 452 4.2.2 Mailbox full","reply_code":452,"rule":"mailbox-full","authenticated":true}' END`
	complainedData = `'{"feedback_type":"abuse","authenticated":true}'`
	repliedData    = `'{"from":"' || RECIPIENT || '","subject":"Re: your message","text":"Thanks, that is what I needed.","in_reply_to":"<' || s.id || '@shop.example>","attachments":[],"authenticated":false}'`
)

// recipientExpr is the address of recipient pos of message s: a person
// at a skewed mix of mailbox providers, and the archive in copy.
func recipientExpr(pos string) string {
	return `CASE ` + pos + ` WHEN 0 THEN 'user' || (s.x2 % 400000) || '@' ||
			CASE s.x2 % 10 WHEN 0 THEN 'outlook.example' WHEN 1 THEN 'yahoo.example' WHEN 2 THEN 'gmail.example'
			WHEN 3 THEN 'gmail.example' WHEN 4 THEN 'gmail.example' WHEN 5 THEN 'gmail.example' WHEN 6 THEN 'web.example'
			WHEN 7 THEN 'corp.example' ELSE 'mail.example' END
		ELSE '` + archiveRecipient + `' END`
}

// statements are the seeding statements after plan, in order.
func (q seedSQL) statements(now int64) []string {
	recipient := recipientExpr("p.pos")
	positions := `(SELECT 0 AS pos UNION ALL SELECT 1) AS p`
	slotTimes := `(SELECT 0 AS slot, 0 AS delay UNION ALL SELECT 1, 1500000 UNION ALL SELECT 2, 900000000) AS e`
	code := `CASE s.status WHEN 'queued' THEN NULL WHEN 'deferred' THEN 451 WHEN 'failed' THEN 550 ELSE 250 END`
	response := `CASE s.status WHEN 'queued' THEN '' WHEN 'deferred' THEN '451 4.7.1 Greylisted, please try again later'
		WHEN 'failed' THEN '550 5.1.1 User unknown' ELSE '250 2.0.0 Ok: queued as Q' || s.g END`
	lastEvent := q.least(fmt.Sprintf("s.created + CASE %s WHEN 1 THEN 0 WHEN 2 THEN 1500000 ELSE 900000000 END", slots), fmt.Sprint(now))
	typ := `CASE e.slot WHEN 0 THEN 'message.queued' WHEN 1 THEN ` + slot1 + ` ELSE ` + slot2 + ` END`
	data := `CASE ` + typ + ` WHEN 'message.sent' THEN ` + sentData + ` WHEN 'message.deferred' THEN ` + deferredData +
		` WHEN 'message.failed' THEN ` + failedData + ` WHEN 'message.bounced' THEN ` + bouncedData +
		` WHEN 'message.complained' THEN ` + complainedData + ` WHEN 'message.replied' THEN ` +
		strings.ReplaceAll(repliedData, "RECIPIENT", recipient) + ` ELSE '{}' END`
	return []string{
		`UPDATE bench_seed SET tag2 = NULL WHERE tag2 = tag1 OR tag1 IS NULL`,
		`INSERT INTO messages (id, project_id, key_id, from_header, from_domain, subject, status, tags, metadata,
			event_seq, attempts, next_attempt_at, created_at, updated_at)
		SELECT s.id, s.project_id, 'bench', 'Shop <no-reply@' || s.domain || '>', s.domain, ` + pick("(s.x3 / 10000 % 10000)", subjectShares, false) + `,
			s.status,
			CASE WHEN s.tag1 IS NULL THEN '[]' WHEN s.tag2 IS NULL THEN '["' || s.tag1 || '"]'
				ELSE '["' || s.tag1 || '","' || s.tag2 || '"]' END,
			'{"customer_id":"c-' || (s.x2 % 400000) || '","order_id":"o-' || s.g || '","locale":"' ||
				CASE s.x4 % 4 WHEN 0 THEN 'de-DE' WHEN 1 THEN 'fr-FR' ELSE 'en-GB' END || '","campaign":"' ||
				CASE s.x5 % 5 WHEN 0 THEN 'winter-sale' WHEN 1 THEN 'onboarding' ELSE 'transactional' END || '"}',
			(` + slots + `) * s.nrec,
			CASE s.status WHEN 'queued' THEN 0 WHEN 'deferred' THEN 3 ELSE CASE s.variant WHEN 'd' THEN 2 ELSE 1 END END,
			CASE s.status WHEN 'deferred' THEN s.created + 3600000000 END,
			s.created, ` + lastEvent + `
		FROM bench_seed s ORDER BY s.i`,
		`INSERT INTO message_payloads (message_id, request, text, html)
		SELECT s.id, '{"from":"Shop <no-reply@' || s.domain || '>","to":["' || ` + recipientExpr("0") + ` || '"],"subject":"Your order","headers":{"X-Order":"' || s.g || '"}}',
			$1, $2
		FROM bench_seed s ORDER BY s.i`,
		`INSERT INTO recipients (message_id, position, email, email_lc, kind, status, smtp_code, smtp_response, updated_at)
		SELECT s.id, p.pos, ` + recipient + `, ` + recipient + `, CASE p.pos WHEN 0 THEN 'to' ELSE 'cc' END,
			s.status, ` + code + `, ` + response + `, ` + lastEvent + `
		FROM bench_seed s, ` + positions + ` WHERE p.pos < s.nrec ORDER BY s.i, p.pos`,
		`INSERT INTO message_tags (message_id, tag)
		SELECT s.id, s.tag1 FROM bench_seed s WHERE s.tag1 IS NOT NULL
		UNION ALL SELECT s.id, s.tag2 FROM bench_seed s WHERE s.tag2 IS NOT NULL`,
		`INSERT INTO events (project_id, message_id, recipient, type, sequence, data, created_at)
		SELECT s.project_id, s.id, ` + recipient + `, ` + typ + `, e.slot * s.nrec + p.pos + 1, ` + data + `,
			` + q.least("s.created + e.delay", fmt.Sprint(now)) + `
		FROM bench_seed s, ` + slotTimes + `, ` + positions + `
		WHERE p.pos < s.nrec AND e.slot < ` + slots + `
		ORDER BY s.i, e.slot, p.pos`,
	}
}

// seedOptions size the seed.
type seedOptions struct {
	rows int
	span time.Duration
	now  time.Time
}

// seed fills an empty, migrated database with opts.rows messages of the
// default project and a tenth as many of a second one, spread over
// opts.span before opts.now, with their recipients, tags, payloads and
// events, one set-based statement per table in one transaction. It
// returns what it wrote.
func seed(ctx context.Context, dbURL string, opts seedOptions) (string, error) {
	dialect, db, err := openSeedDB(dbURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var has bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM messages)`).Scan(&has); err != nil {
		return "", fmt.Errorf("check the database is migrated: %w", err)
	}
	if has {
		return "", fmt.Errorf("the database already has messages: seed a fresh one")
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if err := seedIn(ctx, tx, dialect, opts); err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("commit the seed: %w", err)
	}
	// PostgreSQL's autovacuum would analyse the tables soon after such a
	// load; SQLite has no statistics in service (the store never runs
	// ANALYZE), so it gets none here either.
	after := `VACUUM ANALYZE`
	if dialect == store.DialectSQLite {
		after = `PRAGMA journal_mode = WAL` // as the store keeps it
	}
	if _, err := db.ExecContext(ctx, after); err != nil {
		return "", fmt.Errorf("%s: %w", after, err)
	}
	return counts(ctx, db)
}

// seedIn runs the seed's statements in tx.
func seedIn(ctx context.Context, tx *sql.Tx, dialect string, opts seedOptions) error {
	q := seedSQL{dialect: dialect}
	if dialect == store.DialectPostgres {
		// Replica mode skips the triggers, foreign-key checks included
		// (the rows are consistent by construction; no webhook endpoint
		// exists for the fan-out trigger to match).
		for _, set := range []string{`SET LOCAL session_replication_role = replica`, `SET LOCAL work_mem = '256MB'`} {
			if _, err := tx.ExecContext(ctx, set); err != nil {
				return fmt.Errorf("%s: %w", set, err)
			}
		}
	}
	now, span := opts.now.UnixMicro(), opts.span.Microseconds()
	stmts := []string{
		`INSERT INTO projects (id, name, created_at) VALUES ('` + otherProjectID + `', 'bench-other', ` + fmt.Sprint(now-span) + `)`,
		`CREATE TABLE bench_seed (i INTEGER PRIMARY KEY, g BIGINT NOT NULL, id TEXT NOT NULL, project_id TEXT NOT NULL,
			created BIGINT NOT NULL, x1 BIGINT, x2 BIGINT, x3 BIGINT, x4 BIGINT, x5 BIGINT, status TEXT, nrec INTEGER,
			domain TEXT, tag1 TEXT, tag2 TEXT, variant TEXT)`,
		q.plan(opts.rows+opts.rows/10, now-span, span),
	}
	stmts = append(stmts, q.statements(now)...)
	stmts = append(stmts, `DROP TABLE bench_seed`)
	text, html := payloadBodies()
	for _, s := range stmts {
		var args []any
		if strings.Contains(s, "$1") {
			args = []any{text, html}
		}
		if _, err := tx.ExecContext(ctx, s, args...); err != nil {
			return fmt.Errorf("seed: %w\n%s", err, s)
		}
	}
	return nil
}

// payloadBodies are every seeded message's text and HTML (about 0.6 and
// 1.2 KB).
func payloadBodies() (text, html []byte) {
	p := strings.Repeat("Thank you for your order; we are packing it now and will send tracking details soon. ", 7)
	return []byte("Hello,\n\n" + p + "\n\nShop"), []byte("<html><body><p>Hello,</p><p>" + p + "</p><p>" + p + "</p><p>Shop</p></body></html>")
}

// openSeedDB opens the database of a mailgate URL for seeding: on SQLite
// without foreign-key checks, syncing or a journal (a failure only loses
// the seed; one transaction this large in the WAL wrote its pages there
// several times over, 6 GB and more for a 2 GB database).
func openSeedDB(dbURL string) (string, *sql.DB, error) {
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(OFF)&_pragma=foreign_keys(0)"+
			"&_pragma=synchronous(OFF)&_pragma=temp_store(memory)&_pragma=cache_size(-4194304)")
		if err != nil {
			return "", nil, err
		}
		db.SetMaxOpenConns(1)
		return store.DialectSQLite, db, nil
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return "", nil, err
	}
	db.SetMaxOpenConns(1)
	return store.DialectPostgres, db, nil
}

// counts says what the database holds, per table.
func counts(ctx context.Context, db *sql.DB) (string, error) {
	var out []string
	for _, t := range []string{"messages", "recipients", "message_tags", "events", "message_payloads"} {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
			return "", fmt.Errorf("count %s: %w", t, err)
		}
		out = append(out, fmt.Sprintf("%s %d", t, n))
	}
	var statuses []string
	rows, err := db.QueryContext(ctx, `SELECT status, count(*) FROM messages WHERE project_id = $1 GROUP BY status ORDER BY 2 DESC`,
		store.DefaultProjectID)
	if err != nil {
		return "", fmt.Errorf("count statuses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return "", err
		}
		statuses = append(statuses, fmt.Sprintf("%s %d", st, n))
	}
	return strings.Join(out, ", ") + "; default project by status: " + strings.Join(statuses, ", "), rows.Err()
}
