package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sender domain statuses (docs/architecture.md "Statuses").
const (
	// DomainPending: registered, its DKIM record not found yet.
	DomainPending = "pending"
	// DomainVerified: a DKIM record of one of its active keys was found
	// in DNS. A name is verified in at most one project.
	DomainVerified = "verified"
	// DomainFailed: it was verified, then a re-check found none of its
	// DKIM records. Production mode does not send from it; it no longer
	// keeps another project from verifying the name; a check that finds
	// the record makes it verified again.
	DomainFailed = "failed"
)

// Domain event types, written when a check changes a domain's status.
// Their data is {domain, status, records}; they have no message.
const (
	EventDomainVerified           = "domain.verified"
	EventDomainVerificationFailed = "domain.verification_failed"
)

// CheckedRecord is one DKIM record a check looked up, for the event data.
type CheckedRecord struct {
	Name string `json:"name"`
	// Status is what DNS answered: found, missing or error.
	Status string `json:"status"`
	// OK says whether a record found there matches the key.
	OK bool `json:"ok"`
}

// DomainCheckResult is what RecordDomainCheck did.
type DomainCheckResult struct {
	// Domain is the domain as stored after the check, with its keys.
	Domain Domain
	// Changed says whether its status changed (and an event was written).
	Changed bool
	// Taken: another project has the name verified, so the status did
	// not change.
	Taken bool
	// Stale: the domain checked was deleted or its active keys changed
	// during the lookup; nothing was recorded (Domain is empty).
	Stale bool
}

// RecordDomainCheck stores the definite outcome of a DKIM lookup of the
// domain checked (as read before the lookup, with its keys) at Now: found
// says whether a record of one of its active keys is published (a lookup
// error is no outcome: the caller leaves the domain alone). The outcome
// is recorded on that row (by id) only if its active keys are still those
// looked up: a domain deleted (and perhaps registered again, a new row)
// or whose keys changed during the lookup is left alone and the result is
// Stale. When another project has the name verified, nothing but
// checked_at changes and the result is Taken, found or not. Otherwise
// found makes the domain verified; not found turns a verified domain
// failed and leaves a pending or failed one as it is. Either sets
// checked_at. A status change writes its event in the same transaction.
//
// Two projects verifying one name at once cannot both win: the unique
// index on verified names refuses the second (Taken).
func (s *Store) RecordDomainCheck(ctx context.Context, checked Domain, found bool, records []CheckedRecord) (DomainCheckResult, error) {
	projectID, name := checked.ProjectID, checked.Name
	now := micros(s.now())
	var res DomainCheckResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = DomainCheckResult{}
		id := checked.ID
		status, same, err := s.lockCheckedDomain(ctx, tx, checked)
		if err != nil || !same {
			res.Stale = !same
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE domains SET checked_at = $2 WHERE id = $1`, id, now); err != nil {
			return err
		}
		if res.Taken, err = verifiedElsewhere(ctx, tx, id, name); err != nil || res.Taken {
			return err
		}
		next := status
		switch {
		case found:
			next = DomainVerified
		case status == DomainVerified:
			next = DomainFailed
		}
		if next != status {
			if err := setDomainStatus(ctx, tx, id, next, now); err != nil {
				return err
			}
			res.Changed = true
			if err := insertDomainEvent(ctx, tx, projectID, name, next, records, now); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errTaken) {
		res, err = DomainCheckResult{Taken: true}, nil
	}
	if err != nil {
		return DomainCheckResult{}, fmt.Errorf("record check of domain %s: %w", name, err)
	}
	if res.Stale {
		return res, nil
	}
	if res.Domain, err = s.GetDomain(ctx, projectID, name); err != nil {
		return DomainCheckResult{}, err
	}
	return res, nil
}

// errTaken rolls back a transaction whose domain update the unique index
// of verified names refused: a concurrent verification of the name in
// another project committed first.
var errTaken = errors.New("name verified by another project")

// verifiedElsewhere reports whether a domain other than id has the name
// verified (committed).
func verifiedElsewhere(ctx context.Context, tx *sql.Tx, id, name string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM domains WHERE name = $1 AND status = 'verified' AND id <> $2`,
		name, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// setDomainStatus sets a domain's status; becoming verified also sets
// verified_at. The unique index of verified names refusing it (which
// aborts a PostgreSQL transaction) is errTaken, for the caller to roll
// back.
func setDomainStatus(ctx context.Context, tx *sql.Tx, id, status string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE domains SET status = $2,
		verified_at = CASE WHEN $2 = 'verified' THEN $3 ELSE verified_at END WHERE id = $1`, id, status, now)
	if isUniqueViolation(err) {
		return errTaken
	}
	return err
}

// lockCheckedDomain locks the row of the domain checked and returns its
// status; same is false when the row is gone or its active keys are no
// longer those of checked.
func (s *Store) lockCheckedDomain(ctx context.Context, tx *sql.Tx, checked Domain) (status string, same bool, err error) {
	q := `SELECT status FROM domains WHERE id = $1`
	if s.dialect == DialectPostgres {
		q += ` FOR UPDATE`
	}
	err = tx.QueryRowContext(ctx, q, checked.ID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	keys, err := queryKeys(ctx, tx, `WHERE domain_id = $1 AND retired_at IS NULL`, checked.ID)
	if err != nil {
		return "", false, err
	}
	var want []string
	for _, k := range checked.Keys {
		if k.RetiredAt == nil {
			want = append(want, k.ID)
		}
	}
	var got []string
	for _, k := range keys[checked.ID] {
		got = append(got, k.ID)
	}
	slices.Sort(want)
	slices.Sort(got)
	return status, slices.Equal(want, got), nil
}

// domainEventData is the data of a domain event.
type domainEventData struct {
	Domain  string          `json:"domain"`
	Status  string          `json:"status"`
	Records []CheckedRecord `json:"records,omitempty"`
}

// insertDomainEvent writes the event of a domain's new status: an event
// without a message (message_id NULL, sequence 0, no recipient).
func insertDomainEvent(ctx context.Context, tx *sql.Tx, projectID, name, status string, records []CheckedRecord, now int64) error {
	typ := EventDomainVerified
	if status != DomainVerified {
		typ = EventDomainVerificationFailed
	}
	data, err := json.Marshal(domainEventData{Domain: name, Status: status, Records: records})
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, insertEvent+` VALUES ($1, NULL, '', $2, 0, $3, $4)`, projectID, typ, string(data), now)
	if err != nil {
		return fmt.Errorf("insert %s event: %w", typ, err)
	}
	return nil
}

// SenderDomain is what a send needs to know about its From domain in a
// project.
type SenderDomain struct {
	// Registered: the project has the domain.
	Registered bool
	// Status is the project's domain's status (when Registered).
	Status string
	// VerifiedElsewhere: another project has the name verified.
	VerifiedElsewhere bool
	// Selectors are the selectors of the domain's active keys, when it is
	// registered and not verified (for the message that says what to
	// publish); empty otherwise.
	Selectors []string
}

// SenderDomain reports whether the project registered domain (lower case,
// A-label form), its status, and whether another project has the name
// verified (registered here or not): one indexed lookup, made for every
// send the API's cache does not answer. The selectors, read only for a
// domain not verified, cost a second query on that rarer path.
func (s *Store) SenderDomain(ctx context.Context, projectID, domain string) (SenderDomain, error) {
	var sd SenderDomain
	id, err := s.lookupSenderDomain(ctx, projectID, domain, &sd.Status, &sd.VerifiedElsewhere)
	if err != nil {
		return SenderDomain{}, fmt.Errorf("sender domain %s: %w", domain, err)
	}
	if id == "" {
		return sd, nil
	}
	sd.Registered = true
	if sd.Status == DomainVerified {
		return sd, nil
	}
	keys, err := queryKeys(ctx, s.rdb, `WHERE domain_id = $1 AND retired_at IS NULL`, id)
	if err != nil {
		return SenderDomain{}, fmt.Errorf("sender domain %s: %w", domain, err)
	}
	for _, k := range keys[id] {
		sd.Selectors = append(sd.Selectors, k.Selector)
	}
	return sd, nil
}

// lookupSenderDomain is the one indexed lookup both SenderDomain (the
// API, at acceptance) and SigningKeys (the worker, at send time) make: the
// project's domain id ("" when it has not registered the name), its status
// and whether another project has the name verified.
func (s *Store) lookupSenderDomain(ctx context.Context, projectID, domain string, status *string, elsewhere *bool) (string, error) {
	var id string
	err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(d.id, ''), COALESCE(d.status, ''), EXISTS (SELECT 1 FROM domains o
			WHERE o.name = $2 AND o.status = 'verified' AND o.project_id <> $1)
		FROM (SELECT 1 AS one) x LEFT JOIN domains d ON d.project_id = $1 AND d.name = $2`, projectID, domain).
		Scan(&id, status, elsewhere)
	return id, err
}

// DomainsDue lists up to limit domains whose periodic re-check is due:
// verified or failed, and not checked since before. Oldest check first.
// A re-checker claims each with ClaimDomainCheck.
func (s *Store) DomainsDue(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id FROM domains
		WHERE status IN ('verified', 'failed') AND (checked_at IS NULL OR checked_at < $1)
		ORDER BY checked_at LIMIT $2`, micros(before), limit)
	if err != nil {
		return nil, fmt.Errorf("domains due: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("domains due: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("domains due: %w", err)
	}
	return out, nil
}

// ClaimDomainCheck claims the re-check of domain id: it sets checked_at
// to Now if the domain is still due (verified or failed, not checked
// since before), and returns it with its keys. ok is false when another
// checker claimed it first (or it changed): of several checkers, one
// checks each domain.
func (s *Store) ClaimDomainCheck(ctx context.Context, id string, before time.Time) (Domain, bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE domains SET checked_at = $2
		WHERE id = $1 AND status IN ('verified', 'failed') AND (checked_at IS NULL OR checked_at < $3)`,
		id, micros(s.now()), micros(before))
	if err != nil {
		return Domain{}, false, fmt.Errorf("claim check of domain %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return Domain{}, false, err
	}
	d, err := scanDomain(s.db.QueryRowContext(ctx, `SELECT `+domainColumns+` FROM domains WHERE id = $1`, id))
	if err != nil {
		return Domain{}, false, fmt.Errorf("claim check of domain %s: %w", id, notFound(err))
	}
	keys, err := queryKeys(ctx, s.db, `WHERE domain_id = $1`, id)
	if err != nil {
		return Domain{}, false, fmt.Errorf("claim check of domain %s: %w", id, err)
	}
	d.Keys = keys[id]
	return d, true, nil
}

// VerifiedNames maps every registered domain name to whether one project
// has it verified, for the mailgate_domain_verified gauge.
func (s *Store) VerifiedNames(ctx context.Context) (map[string]bool, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name,
		MAX(CASE WHEN status = 'verified' THEN 1 ELSE 0 END) FROM domains GROUP BY name`)
	if err != nil {
		return nil, fmt.Errorf("verified names: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		var verified int
		if err := rows.Scan(&name, &verified); err != nil {
			return nil, fmt.Errorf("verified names: %w", err)
		}
		out[name] = verified == 1
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verified names: %w", err)
	}
	return out, nil
}
