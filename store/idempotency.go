package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered; older rows
// count as absent and ExpireIdempotencyKeys may delete them.
const IdempotencyTTL = 24 * time.Hour

// Idempotency row states.
const (
	idemInFlight = "in_flight"
	idemDone     = "done"
)

// idemRow is a stored idempotency key.
type idemRow struct {
	hash    []byte
	state   string
	code    sql.NullInt64
	body    []byte
	created int64
	token   string
}

// ClaimIdempotencyKey claims key for the API key keyID (Stripe semantics).
// Fresh: the caller owns it, under a new random Token, and finishes it
// through CreateMessages or CommitMessage (or ReleaseIdempotencyKey on
// failure). InFlight: another request holds it.
// Otherwise the first request finished and its RequestHash, ResponseCode
// and ResponseBody are returned. An in-flight claim older than staleAfter,
// or any row older than IdempotencyTTL, is taken over as Fresh.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, keyID, key string, requestHash []byte, staleAfter time.Duration) (IdempotencyState, error) {
	// Each round either claims, reads a live row, or loses a race to
	// another claimer and looks again; three rounds cover every race.
	for range 3 {
		now, token := s.now(), rand.Text()
		res, err := s.db.ExecContext(ctx, `INSERT INTO idempotency_keys (key_id, idem_key, request_hash, state, created_at, claim_token)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id, idem_key) DO NOTHING`,
			keyID, key, requestHash, idemInFlight, micros(now), token)
		if err != nil {
			return IdempotencyState{}, fmt.Errorf("claim idempotency key: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return IdempotencyState{Fresh: true, Token: token}, nil
		}
		st, done, err := s.inspectIdempotencyKey(ctx, keyID, key, requestHash, staleAfter, now, token)
		if err != nil || done {
			return st, err
		}
	}
	return IdempotencyState{}, errors.New("claim idempotency key: contended, try again")
}

// inspectIdempotencyKey reads an existing row and takes it over, under
// token, when stale or expired. done is false when the row changed under
// us.
func (s *Store) inspectIdempotencyKey(ctx context.Context, keyID, key string, hash []byte,
	staleAfter time.Duration, now time.Time, token string) (IdempotencyState, bool, error) {
	var r idemRow
	err := s.db.QueryRowContext(ctx, `SELECT request_hash, state, response_code, response_body, created_at, claim_token
		FROM idempotency_keys WHERE key_id = $1 AND idem_key = $2`, keyID, key).
		Scan(&r.hash, &r.state, &r.code, &r.body, &r.created, &r.token)
	if errors.Is(err, sql.ErrNoRows) {
		return IdempotencyState{}, false, nil
	}
	if err != nil {
		return IdempotencyState{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	age := now.Sub(fromMicros(r.created))
	expired := age >= IdempotencyTTL
	switch {
	case !expired && r.state == idemDone:
		return IdempotencyState{RequestHash: r.hash, ResponseCode: int(r.code.Int64), ResponseBody: r.body}, true, nil
	case !expired && age < staleAfter:
		return IdempotencyState{InFlight: true, RequestHash: r.hash}, true, nil
	}
	// Compare-and-swap on the claim we read, so two takers cannot both
	// win; the old holder's token no longer finishes or releases it.
	res, err := s.db.ExecContext(ctx, `UPDATE idempotency_keys SET request_hash = $3, state = $4,
			response_code = NULL, response_body = NULL, created_at = $5, finished_at = NULL, claim_token = $6
		WHERE key_id = $1 AND idem_key = $2 AND state = $7 AND claim_token = $8 AND created_at = $9`,
		keyID, key, hash, idemInFlight, micros(now), token, r.state, r.token, r.created)
	if err != nil {
		return IdempotencyState{}, false, fmt.Errorf("take over idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return IdempotencyState{Fresh: true, Token: token}, true, nil
	}
	return IdempotencyState{}, false, nil
}

// ReleaseIdempotencyKey forgets the in-flight claim token of key, for a
// request that failed before committing, so a retry can claim it afresh.
// A finished or missing key, or a claim taken over by another request
// (another token), is left alone.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, keyID, key, token string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys
		WHERE key_id = $1 AND idem_key = $2 AND state = $3 AND claim_token = $4`,
		keyID, key, idemInFlight, token)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
