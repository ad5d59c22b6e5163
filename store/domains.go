package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ErrLastActiveKey: RetireDKIMKey was asked to retire the only active key
// of its algorithm on a domain, which would stop signing with it.
var ErrLastActiveKey = errors.New("last active DKIM key of its algorithm")

// Domain is a sender domain of a project with its DKIM keys.
type Domain struct {
	ID        string
	ProjectID string
	// Name is lower case, IDN in A-label form; unique per project.
	Name      string
	CreatedAt time.Time
	// Status is DomainPending, DomainVerified or DomainFailed
	// (domaincheck.go); a new domain is pending.
	Status string
	// VerifiedAt is when the domain last became verified; nil if never.
	VerifiedAt *time.Time
	// CheckedAt is when its DKIM record was last looked up (by verify or
	// a re-check); nil if never.
	CheckedAt *time.Time
	// Keys are every key, active and retired, oldest first (then by
	// selector).
	Keys []DKIMKey
}

// DKIMKey is one DKIM key pair of a domain.
type DKIMKey struct {
	ID string
	// Selector is the DNS label of the key (<selector>._domainkey.<domain>),
	// unique within its domain, retired keys included.
	Selector string
	// Algorithm is "rsa" or "ed25519".
	Algorithm string
	// PrivateKeySealed is the PEM private key sealed with the master key;
	// the store never sees it in clear.
	PrivateKeySealed []byte
	// PublicRecord is the DNS TXT value ("v=DKIM1; k=…; p=…").
	PublicRecord string
	CreatedAt    time.Time
	// RetiredAt is nil while the key signs.
	RetiredAt *time.Time
}

const dkimKeyColumns = "id, selector, algorithm, private_key_sealed, public_record, created_at, retired_at"

const domainColumns = "id, project_id, name, created_at, status, verified_at, checked_at"

// scanDomain reads domainColumns (without the keys).
func scanDomain(r scanner) (Domain, error) {
	var d Domain
	var created int64
	var verified, checked sql.NullInt64
	if err := r.Scan(&d.ID, &d.ProjectID, &d.Name, &created, &d.Status, &verified, &checked); err != nil {
		return Domain{}, err
	}
	d.CreatedAt, d.VerifiedAt, d.CheckedAt = fromMicros(created), timePtr(verified), timePtr(checked)
	return d, nil
}

// CreateDomain stores a domain with its keys in one transaction. Empty ids
// become UUIDv7s and zero times Now. A name the project already has is
// ErrConflict. It returns the stored domain.
func (s *Store) CreateDomain(ctx context.Context, d Domain) (Domain, error) {
	if d.ProjectID == "" || d.Name == "" {
		return Domain{}, errors.New("create domain: project and name are required")
	}
	if err := fillIDs(&d, s.now()); err != nil {
		return Domain{}, fmt.Errorf("create domain %s: %w", d.Name, err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO domains (id, project_id, name, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, name) DO NOTHING`,
			d.ID, d.ProjectID, d.Name, micros(d.CreatedAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return ErrConflict
		}
		return insertKeys(ctx, tx, d.ID, d.Keys)
	})
	if err != nil {
		return Domain{}, fmt.Errorf("create domain %s: %w", d.Name, err)
	}
	return d, nil
}

// fillIDs gives the domain and its keys ids and creation times, and
// truncates times to what the database keeps.
func fillIDs(d *Domain, now time.Time) error {
	if d.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		d.ID = id.String()
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now
	}
	d.CreatedAt = fromMicros(micros(d.CreatedAt))
	d.Status, d.VerifiedAt, d.CheckedAt = DomainPending, nil, nil
	for i := range d.Keys {
		if err := fillKey(&d.Keys[i], now); err != nil {
			return err
		}
	}
	sortKeys(d.Keys)
	return nil
}

// sortKeys orders keys as the store returns them: oldest first, then by
// selector.
func sortKeys(keys []DKIMKey) {
	slices.SortStableFunc(keys, func(a, b DKIMKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Selector, b.Selector)
	})
}

func fillKey(k *DKIMKey, now time.Time) error {
	if k.Selector == "" || k.Algorithm == "" || len(k.PrivateKeySealed) == 0 {
		return errors.New("a DKIM key needs a selector, an algorithm and a sealed private key")
	}
	if k.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		k.ID = id.String()
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now
	}
	k.CreatedAt = fromMicros(micros(k.CreatedAt))
	if k.RetiredAt != nil {
		r := fromMicros(micros(*k.RetiredAt))
		k.RetiredAt = &r
	}
	return nil
}

// insertKeys adds keys to a domain; a selector the domain already has is
// ErrConflict.
func insertKeys(ctx context.Context, tx *sql.Tx, domainID string, keys []DKIMKey) error {
	for _, k := range keys {
		res, err := tx.ExecContext(ctx, `INSERT INTO dkim_keys (domain_id, `+dkimKeyColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (domain_id, selector) DO NOTHING`,
			domainID, k.ID, k.Selector, k.Algorithm, k.PrivateKeySealed, k.PublicRecord,
			micros(k.CreatedAt), nullMicros(k.RetiredAt))
		if err != nil {
			return fmt.Errorf("insert key %s: %w", k.Selector, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("selector %s: %w", k.Selector, ErrConflict)
		}
	}
	return nil
}

// GetDomain finds a project's domain with its keys, or ErrNotFound.
func (s *Store) GetDomain(ctx context.Context, projectID, name string) (Domain, error) {
	d, err := getDomain(ctx, s.rdb, projectID, name)
	if err != nil {
		return Domain{}, fmt.Errorf("domain %s: %w", name, err)
	}
	return d, nil
}

func getDomain(ctx context.Context, q querier, projectID, name string) (Domain, error) {
	d, err := scanDomain(q.QueryRowContext(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE project_id = $1 AND name = $2`, projectID, name))
	if err != nil {
		return Domain{}, notFound(err)
	}
	keys, err := queryKeys(ctx, q, `WHERE domain_id = $1`, d.ID)
	if err != nil {
		return Domain{}, err
	}
	d.Keys = keys[d.ID]
	return d, nil
}

// ListDomains lists a project's domains by name, each with its keys.
func (s *Store) ListDomains(ctx context.Context, projectID string) ([]Domain, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+domainColumns+` FROM domains
		WHERE project_id = $1 ORDER BY name`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	defer rows.Close()
	out := []Domain{}
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("list domains: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	keys, err := queryKeys(ctx, s.rdb,
		`WHERE domain_id IN (SELECT id FROM domains WHERE project_id = $1)`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	for i := range out {
		out[i].Keys = keys[out[i].ID]
	}
	return out, nil
}

// queryKeys runs "SELECT … FROM dkim_keys <where>" and groups the keys by
// domain id, oldest first.
func queryKeys(ctx context.Context, q querier, where string, args ...any) (map[string][]DKIMKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT domain_id, `+dkimKeyColumns+` FROM dkim_keys `+where+
		` ORDER BY created_at, selector`, args...)
	if err != nil {
		return nil, fmt.Errorf("dkim keys: %w", err)
	}
	defer rows.Close()
	out := map[string][]DKIMKey{}
	for rows.Next() {
		var domainID string
		k, err := scanDKIMKey(rows, &domainID)
		if err != nil {
			return nil, fmt.Errorf("dkim keys: %w", err)
		}
		out[domainID] = append(out[domainID], k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dkim keys: %w", err)
	}
	return out, nil
}

func scanDKIMKey(r scanner, domainID *string) (DKIMKey, error) {
	var k DKIMKey
	var created int64
	var retired sql.NullInt64
	if err := r.Scan(domainID, &k.ID, &k.Selector, &k.Algorithm, &k.PrivateKeySealed, &k.PublicRecord,
		&created, &retired); err != nil {
		return DKIMKey{}, err
	}
	k.CreatedAt = fromMicros(created)
	k.RetiredAt = timePtr(retired)
	return k, nil
}

// DeleteDomain removes a project's domain and its keys, or returns
// ErrNotFound.
func (s *Store) DeleteDomain(ctx context.Context, projectID, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM dkim_keys WHERE domain_id IN
			(SELECT id FROM domains WHERE project_id = $1 AND name = $2)`, projectID, name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE project_id = $1 AND name = $2`, projectID, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete domain %s: %w", name, err)
	}
	return nil
}

// AddDKIMKeys adds keys to a project's domain (a rotation: the old keys
// keep signing until retired) and returns the domain. An unknown domain is
// ErrNotFound, a selector the domain already has ErrConflict.
func (s *Store) AddDKIMKeys(ctx context.Context, projectID, name string, keys []DKIMKey) (Domain, error) {
	now := s.now()
	for i := range keys {
		if err := fillKey(&keys[i], now); err != nil {
			return Domain{}, fmt.Errorf("add dkim keys to %s: %w", name, err)
		}
	}
	var d Domain
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		id, err := s.lockDomain(ctx, tx, projectID, name)
		if err != nil {
			return err
		}
		if err := insertKeys(ctx, tx, id, keys); err != nil {
			return err
		}
		d, err = getDomain(ctx, tx, projectID, name)
		return err
	})
	if err != nil {
		return Domain{}, fmt.Errorf("add dkim keys to %s: %w", name, err)
	}
	return d, nil
}

// lockDomain finds a domain's id inside a write transaction, locking its
// row on PostgreSQL so that concurrent key changes of one domain
// serialise (SQLite's single writer already does).
func (s *Store) lockDomain(ctx context.Context, tx *sql.Tx, projectID, name string) (string, error) {
	q := `SELECT id FROM domains WHERE project_id = $1 AND name = $2`
	if s.dialect == DialectPostgres {
		q += ` FOR UPDATE`
	}
	var id string
	if err := tx.QueryRowContext(ctx, q, projectID, name).Scan(&id); err != nil {
		return "", notFound(err)
	}
	return id, nil
}

// RetireDKIMKey stops signing with a domain's active key at Now. An
// unknown domain or selector, or a key already retired, is ErrNotFound;
// the domain's only active key of that algorithm is ErrLastActiveKey.
func (s *Store) RetireDKIMKey(ctx context.Context, projectID, name, selector string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		id, err := s.lockDomain(ctx, tx, projectID, name)
		if err != nil {
			return err
		}
		var alg string
		if err := tx.QueryRowContext(ctx, `SELECT algorithm FROM dkim_keys
			WHERE domain_id = $1 AND selector = $2 AND retired_at IS NULL`, id, selector).Scan(&alg); err != nil {
			return notFound(err)
		}
		var active int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM dkim_keys
			WHERE domain_id = $1 AND algorithm = $2 AND retired_at IS NULL`, id, alg).Scan(&active); err != nil {
			return err
		}
		if active <= 1 {
			return ErrLastActiveKey
		}
		_, err = tx.ExecContext(ctx, `UPDATE dkim_keys SET retired_at = $3 WHERE domain_id = $1 AND selector = $2`,
			id, selector, micros(s.now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("retire dkim key %s of %s: %w", selector, name, err)
	}
	return nil
}

// SigningDomain is what the worker needs to know about a message's
// sender domain at send time.
type SigningDomain struct {
	// Registered: the project has the domain.
	Registered bool
	// Status is the project's domain's status (when Registered).
	Status string
	// VerifiedElsewhere: another project has the name verified.
	VerifiedElsewhere bool
	// Keys are the domain's active (not retired) keys, oldest first
	// (when Registered); the worker signs with every one of them.
	Keys []DKIMKey
}

// SigningKeys reads a project's sender domain for a send: whether it is
// registered, its status, whether another project has the name verified
// (one indexed lookup), and its active keys. A registered domain always
// has an active key of each algorithm it signs with (RetireDKIMKey keeps
// the last one), so none means the domain was registered or deleted
// between the two reads.
func (s *Store) SigningKeys(ctx context.Context, projectID, domain string) (SigningDomain, error) {
	var sd SigningDomain
	id, err := s.lookupSenderDomain(ctx, projectID, domain, &sd.Status, &sd.VerifiedElsewhere)
	if err != nil {
		return SigningDomain{}, fmt.Errorf("signing keys of %s: %w", domain, err)
	}
	sd.Keys = []DKIMKey{}
	if id == "" {
		return sd, nil
	}
	sd.Registered = true
	keys, err := queryKeys(ctx, s.rdb, `WHERE domain_id = $1 AND retired_at IS NULL`, id)
	if err != nil {
		return SigningDomain{}, fmt.Errorf("signing keys of %s: %w", domain, err)
	}
	if k := keys[id]; k != nil {
		sd.Keys = k
	}
	return sd, nil
}
