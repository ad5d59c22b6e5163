package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Webhook delivery statuses.
const (
	// DeliveryPending: not attempted yet (or its attempt is in flight).
	DeliveryPending = "pending"
	// DeliveryDelivered: the endpoint answered 2xx.
	DeliveryDelivered = "delivered"
	// DeliveryFailed: the last attempt failed; another is scheduled at
	// NextAttemptAt (or when its endpoint is enabled again).
	DeliveryFailed = "failed"
	// DeliveryExhausted: every attempt of the schedule failed.
	DeliveryExhausted = "exhausted"
)

// EventWebhookDisabled is the event-log entry (and webhook event of the
// project's other endpoints) written when an endpoint is disabled for
// failing: its data carries webhook_id, url and reason.
const EventWebhookDisabled = "webhook.disabled"

// WebhookEndpoint is a URL a project's events are posted to.
type WebhookEndpoint struct {
	ID        string
	ProjectID string
	URL       string
	// Events are the event types delivered; empty is every type.
	Events []string
	// Tags: when set, only events of messages carrying one of them.
	Tags        []string
	Description string
	Enabled     bool
	// DisabledReason says why mailgate disabled the endpoint ("" when it
	// is enabled or was disabled through the API).
	DisabledReason string
	// SecretSealed is the signing secret sealed with the master key; the
	// store never sees it in clear.
	SecretSealed []byte
	// PreviousSecretSealed signs too, until PreviousSecretExpiresAt,
	// after a rotation.
	PreviousSecretSealed    []byte
	PreviousSecretExpiresAt *time.Time
	// FailingSince is the first failed attempt since the last delivered
	// one; nil while deliveries succeed.
	FailingSince *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// WebhookDelivery is one event (or test payload) for one endpoint, with
// the outcome of its latest attempt.
type WebhookDelivery struct {
	// ID is the webhook-id header, the same on every attempt.
	ID         string
	EndpointID string
	// EventID is nil for a test delivery.
	EventID *int64
	Status  string
	// Attempts counts the attempts answered or failed; an answer
	// deferring the delivery (429 or 503 with Retry-After) is not counted.
	Attempts int
	// NextAttemptAt is when the delivery is next due; nil once delivered
	// or exhausted.
	NextAttemptAt *time.Time
	ResponseCode  *int
	// ResponseBody is the start (1 KiB at most) of the latest answer.
	ResponseBody string
	LatencyMS    *int64
	Error        string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// WebhookEndpointPatch changes the fields that are set.
type WebhookEndpointPatch struct {
	URL         *string
	Events      *[]string
	Tags        *[]string
	Description *string
	// Enabled true enables the endpoint and forgets why and since when it
	// failed; false disables it.
	Enabled *bool
}

// WebhookDeliveryFilter selects an endpoint's deliveries.
type WebhookDeliveryFilter struct {
	Status string
	Since  *time.Time
	Until  *time.Time
	Page
}

const webhookEndpointColumns = `id, project_id, url, events, tags, description, enabled, disabled_reason,
	secret_sealed, previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at`

const webhookDeliveryColumns = `d.id, d.endpoint_id, d.event_id, d.status, d.attempts, d.next_attempt_at,
	d.response_code, d.response_body, d.latency_ms, d.error, d.created_at, d.updated_at`

// newDeliveryID is the id of a delivery created at (Unix microseconds):
// 32 hex digits, the form the fan-out trigger of migration 00015 makes,
// created_at then 64 random bits, so that new ids go at the end of the
// primary-key index.
func newDeliveryID(at int64) string {
	id := uuid.New()
	return fmt.Sprintf("%016x%x", at, id[8:])
}

// deliveryIDSQL is the SQL expression making the id of a delivery created
// at the microseconds expression at, in this dialect (newDeliveryID).
func (s *Store) deliveryIDSQL(at string) string {
	if s.dialect == DialectPostgres {
		return `lpad(to_hex((` + at + `)::bigint), 16, '0') || right(replace(gen_random_uuid()::text, '-', ''), 16)`
	}
	return `printf('%016x', ` + at + `) || lower(hex(randomblob(8)))`
}

// stringList is a filter as stored: a JSON array, never null.
func stringList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v) // a []string always marshals
	return string(b)
}

// CreateWebhookEndpoint stores ep; an empty id becomes a UUIDv7 and zero
// times Now. It returns the stored endpoint.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, ep WebhookEndpoint) (WebhookEndpoint, error) {
	if ep.ProjectID == "" || ep.URL == "" || len(ep.SecretSealed) == 0 {
		return WebhookEndpoint{}, errors.New("create webhook endpoint: project, url and secret are required")
	}
	if ep.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return WebhookEndpoint{}, fmt.Errorf("create webhook endpoint: %w", err)
		}
		ep.ID = id.String()
	}
	now := s.now()
	if ep.CreatedAt.IsZero() {
		ep.CreatedAt = now
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO webhook_endpoints (`+webhookEndpointColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, '', $8, NULL, NULL, NULL, $9, $9)`,
		ep.ID, ep.ProjectID, ep.URL, stringList(ep.Events), stringList(ep.Tags), ep.Description, ep.Enabled,
		ep.SecretSealed, micros(ep.CreatedAt))
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("create webhook endpoint: %w", err)
	}
	return s.WebhookEndpoint(ctx, ep.ProjectID, ep.ID)
}

// WebhookEndpoint reads one endpoint of the project; another project's is
// ErrNotFound.
func (s *Store) WebhookEndpoint(ctx context.Context, projectID, id string) (WebhookEndpoint, error) {
	eps, err := queryEndpoints(ctx, s.rdb, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints
		WHERE id = $1 AND project_id = $2`, id, projectID)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("webhook endpoint %s: %w", id, err)
	}
	if len(eps) == 0 {
		return WebhookEndpoint{}, fmt.Errorf("webhook endpoint %s: %w", id, ErrNotFound)
	}
	return eps[0], nil
}

// ListWebhookEndpoints lists the project's endpoints, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, projectID string) ([]WebhookEndpoint, error) {
	eps, err := queryEndpoints(ctx, s.rdb, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints
		WHERE project_id = $1 ORDER BY created_at, id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return eps, nil
}

// DueWebhookEndpoints lists the enabled endpoints having a delivery due
// at now, for the dispatcher: only they are worth a claim. It reads, and
// on SQLite leaves the writer alone.
func (s *Store) DueWebhookEndpoints(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT w.id FROM webhook_endpoints w WHERE w.enabled
		AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = w.id AND d.next_attempt_at <= $1)
		ORDER BY w.created_at, w.id`, micros(now))
	if err != nil {
		return nil, fmt.Errorf("due webhook endpoints: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("due webhook endpoints: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due webhook endpoints: %w", err)
	}
	return ids, nil
}

// UpdateWebhookEndpoint applies p to the project's endpoint id and returns
// it.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, projectID, id string, p WebhookEndpointPatch) (WebhookEndpoint, error) {
	c := &conds{}
	set := "updated_at = " + c.arg(micros(s.now()))
	if p.URL != nil {
		set += ", url = " + c.arg(*p.URL)
	}
	if p.Events != nil {
		set += ", events = " + c.arg(stringList(*p.Events))
	}
	if p.Tags != nil {
		set += ", tags = " + c.arg(stringList(*p.Tags))
	}
	if p.Description != nil {
		set += ", description = " + c.arg(*p.Description)
	}
	if p.Enabled != nil {
		set += ", enabled = " + c.arg(*p.Enabled) + ", disabled_reason = ''"
		if *p.Enabled {
			set += ", failing_since = NULL"
		}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE webhook_endpoints SET `+set+
		` WHERE id = `+c.arg(id)+` AND project_id = `+c.arg(projectID), c.args...)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("update webhook endpoint %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return WebhookEndpoint{}, fmt.Errorf("update webhook endpoint %s: %w", id, ErrNotFound)
	}
	return s.WebhookEndpoint(ctx, projectID, id)
}

// DeleteWebhookEndpoint deletes the endpoint and its deliveries.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, projectID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND project_id = $2`, id, projectID)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("delete webhook endpoint %s: %w", id, ErrNotFound)
	}
	return nil
}

// RotateWebhookSecret makes sealed the endpoint's secret; the current one
// becomes the previous secret, signing too until previousUntil.
func (s *Store) RotateWebhookSecret(ctx context.Context, projectID, id string, sealed []byte, previousUntil time.Time) (WebhookEndpoint, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed,
		previous_secret_expires_at = $1, secret_sealed = $2, updated_at = $3 WHERE id = $4 AND project_id = $5`,
		micros(previousUntil), sealed, micros(s.now()), id, projectID)
	if err != nil {
		return WebhookEndpoint{}, fmt.Errorf("rotate webhook secret %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return WebhookEndpoint{}, fmt.Errorf("rotate webhook secret %s: %w", id, ErrNotFound)
	}
	return s.WebhookEndpoint(ctx, projectID, id)
}

func queryEndpoints(ctx context.Context, q querier, query string, args ...any) ([]WebhookEndpoint, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WebhookEndpoint
	for rows.Next() {
		var ep WebhookEndpoint
		var events, tags string
		var prevUntil, failing sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&ep.ID, &ep.ProjectID, &ep.URL, &events, &tags, &ep.Description, &ep.Enabled,
			&ep.DisabledReason, &ep.SecretSealed, &ep.PreviousSecretSealed, &prevUntil, &failing,
			&created, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(events), &ep.Events); err != nil {
			return nil, fmt.Errorf("events of endpoint %s: %w", ep.ID, err)
		}
		if err := json.Unmarshal([]byte(tags), &ep.Tags); err != nil {
			return nil, fmt.Errorf("tags of endpoint %s: %w", ep.ID, err)
		}
		ep.PreviousSecretExpiresAt, ep.FailingSince = timePtr(prevUntil), timePtr(failing)
		ep.CreatedAt, ep.UpdatedAt = fromMicros(created), fromMicros(updated)
		out = append(out, ep)
	}
	return out, rows.Err()
}

// ClaimedDelivery is a due delivery a dispatcher has leased.
type ClaimedDelivery struct {
	// ID is the webhook-id.
	ID string
	// Attempts counted so far (before this one).
	Attempts int
	// Event is the event delivered; nil for a test delivery.
	Event *Event
	// Payload is a test delivery's body; nil for an event's.
	Payload []byte
	// Lease is the end of this claim's lease, the delivery's
	// next_attempt_at while it holds: the attempt's outcome is written
	// only while it is still there (WebhookAttempt.Lease).
	Lease time.Time
}

// WebhookClaim is what ClaimWebhookDeliveries leased: the endpoint as it
// is at the claim, and its deliveries.
type WebhookClaim struct {
	// Endpoint is read in the claim's transaction, so that the attempts
	// post to its URL, signed with its secrets, as they are now.
	Endpoint   WebhookEndpoint
	Deliveries []ClaimedDelivery
}

// ClaimWebhookDeliveries leases up to n of the endpoint's due deliveries
// (next_attempt_at at or before now), oldest due first, until leaseUntil,
// none while the endpoint is disabled or gone: their next_attempt_at
// becomes leaseUntil, so another dispatcher does not take them and, should
// this one die, they are due again then. Their webhook-id does not change.
// Each carries its lease (leaseUntil), which its outcome must name to be
// written. The endpoint is read in the same transaction, so a change of
// its URL or secret, or its disabling, applies from the next claim.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, endpointID string, n int, now, leaseUntil time.Time) (WebhookClaim, error) {
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var claim WebhookClaim
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		claim = WebhookClaim{}
		if err := s.webhookCommitUnflushed(ctx, tx); err != nil {
			return err
		}
		eps, err := queryEndpoints(ctx, tx, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints
			WHERE enabled AND id = $1`, endpointID)
		if err != nil || len(eps) == 0 {
			return err
		}
		claim.Endpoint = eps[0]
		rows, err := tx.QueryContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $1
			WHERE next_attempt_at <= $2 AND id IN (SELECT id FROM webhook_deliveries
				WHERE endpoint_id = $3 AND next_attempt_at <= $2
				ORDER BY next_attempt_at LIMIT $4`+lock+`)
			RETURNING id, attempts, event_id, payload`, micros(leaseUntil), micros(now), endpointID, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		out := &claim.Deliveries
		var eventIDs []any
		for rows.Next() {
			d := ClaimedDelivery{Lease: fromMicros(micros(leaseUntil))}
			var eventID sql.NullInt64
			var payload sql.NullString
			if err := rows.Scan(&d.ID, &d.Attempts, &eventID, &payload); err != nil {
				return err
			}
			if eventID.Valid {
				d.Event = &Event{ID: eventID.Int64}
				eventIDs = append(eventIDs, eventID.Int64)
			} else {
				d.Payload = []byte(payload.String)
			}
			*out = append(*out, d)
		}
		if err := rows.Err(); err != nil || len(eventIDs) == 0 {
			return err
		}
		evs, err := queryEvents(ctx, tx, `SELECT `+eventColumns+eventsJoined+` WHERE e.id IN (`+
			placeholders(1, len(eventIDs))+`)`, eventIDs)
		if err != nil {
			return err
		}
		byID := make(map[int64]Event, len(evs))
		for _, ev := range evs {
			byID[ev.ID] = ev
		}
		for i, d := range *out {
			if d.Event != nil {
				ev := byID[d.Event.ID]
				(*out)[i].Event = &ev
			}
		}
		return nil
	})
	if err != nil {
		return WebhookClaim{}, fmt.Errorf("claim webhook deliveries of %s: %w", endpointID, err)
	}
	return claim, nil
}

// WebhookAttempt is the outcome of one attempt at a delivery.
type WebhookAttempt struct {
	DeliveryID string
	EndpointID string
	// Lease is the lease of the claim the attempt was made under
	// (ClaimedDelivery.Lease).
	Lease time.Time
	// Status is the delivery's new status.
	Status string
	// Counted: the attempt counts toward the schedule (Attempts + 1).
	Counted bool
	// NextAttemptAt is when to try again; nil when delivered or
	// exhausted.
	NextAttemptAt *time.Time
	ResponseCode  int
	ResponseBody  string
	Latency       time.Duration
	Error         string
	// Deferred: no attempt was made (the endpoint's secret would not
	// open); only the delivery's NextAttemptAt and Error change, its
	// status, attempts and endpoint stay as they are.
	Deferred bool
	// DisableReason, when set, disables the endpoint and says why.
	DisableReason string
	// DisableAfter, when set, disables the endpoint if this attempt
	// failed and its failing_since, as stored when the attempt is
	// written, is at least that long before At.
	DisableAfter time.Duration
	// At is when the attempt ended.
	At time.Time
}

// RecordWebhookAttempt stores an attempt's outcome in one transaction: the
// delivery's status; the endpoint's failing_since (cleared by a delivered
// attempt, set by the first failed one); and, with DisableReason, the
// endpoint disabled and the event log saying so. It is written only while
// the attempt's lease holds (the delivery's next_attempt_at is still
// a.Lease): once a retry or a lapsed lease has made the delivery due
// again, another attempt owns it, and recorded is false with nothing
// written. Concurrent calls are written together, one transaction for the
// group (batcher.go); should the group fail, each is written alone.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a WebhookAttempt) (recorded bool, err error) {
	r := &attemptRequest{a: a, done: make(chan struct{})}
	s.hookAttempts.submit(ctx, r)
	<-r.done
	if r.err != nil {
		return false, fmt.Errorf("record webhook attempt %s: %w", a.DeliveryID, r.err)
	}
	return r.recorded, nil
}

// attemptRequest is one RecordWebhookAttempt call waiting for its write.
type attemptRequest struct {
	a        WebhookAttempt
	recorded bool
	err      error
	done     chan struct{}
}

// writeWebhookAttempts writes a group of attempts in one transaction, or
// each alone when that fails, and answers every request.
func (s *Store) writeWebhookAttempts(ctx context.Context, group []*attemptRequest) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.webhookCommitUnflushed(ctx, tx); err != nil {
			return err
		}
		for _, r := range group {
			var err error
			if r.recorded, err = s.writeWebhookAttempt(ctx, tx, r.a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		for _, r := range group {
			r.err = s.inTx(ctx, func(tx *sql.Tx) error {
				if err := s.webhookCommitUnflushed(ctx, tx); err != nil {
					return err
				}
				var err error
				r.recorded, err = s.writeWebhookAttempt(ctx, tx, r.a)
				return err
			})
			close(r.done)
		}
		return
	}
	for _, r := range group {
		r.err = err
		close(r.done)
	}
}

// webhookCommitUnflushed lets tx, a claim or a group of attempt outcomes,
// commit on PostgreSQL without waiting for its WAL flush
// (synchronous_commit off for this transaction only). A server crash can
// lose such a commit, written at most a few hundred milliseconds before,
// and that only makes its deliveries due again at their old time or when
// their lease ends: deliveries are at least once, with the same
// webhook-id, which receivers dedupe by. Nothing else rides on these
// transactions (an endpoint's disabling asks for the flush again:
// disableEndpoint), and any later flushed commit, such as mail's, flushes
// them too, so no durable state ever rests on a lost one. The claim's
// flush was most of its time, and the dispatcher claims one endpoint's
// deliveries at a time; see docs/performance.md "Fan-out rate" for what
// it saved. SQLite has no such setting and needs none.
func (s *Store) webhookCommitUnflushed(ctx context.Context, tx *sql.Tx) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`)
	return err
}

// writeWebhookAttempt writes one attempt's outcome inside tx, if its lease
// still holds (recorded).
func (s *Store) writeWebhookAttempt(ctx context.Context, tx *sql.Tx, a WebhookAttempt) (recorded bool, err error) {
	if a.Deferred {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $1, error = $2, updated_at = $3
			WHERE id = $4 AND next_attempt_at = $5`, nullMicros(a.NextAttemptAt), a.Error, micros(a.At), a.DeliveryID,
			micros(a.Lease))
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n > 0, err
	}
	if a.DisableReason == "" && a.DisableAfter > 0 && a.Status != DeliveryDelivered {
		var since int64
		err := tx.QueryRowContext(ctx, `SELECT failing_since FROM webhook_endpoints
			WHERE id = $1 AND enabled AND failing_since <= $2`, a.EndpointID, micros(a.At.Add(-a.DisableAfter))).Scan(&since)
		switch {
		case err == nil:
			a.DisableReason = "every attempt failed since " + fromMicros(since).UTC().Format(time.RFC3339)
		case !errors.Is(err, sql.ErrNoRows):
			return false, err
		}
	}
	if a.DisableReason != "" && a.Status == DeliveryExhausted {
		// kept for when the endpoint is enabled again
		a.Status = DeliveryFailed
		a.NextAttemptAt = &a.At
	}
	counted := 0
	if a.Counted {
		counted = 1
	}
	var code sql.NullInt64
	if a.ResponseCode != 0 {
		code = sql.NullInt64{Int64: int64(a.ResponseCode), Valid: true}
	}
	res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = $1, attempts = attempts + $2,
		next_attempt_at = $3, response_code = $4, response_body = $5, latency_ms = $6, error = $7, updated_at = $8
		WHERE id = $9 AND next_attempt_at = $10`, a.Status, counted, nullMicros(a.NextAttemptAt), code, a.ResponseBody,
		a.Latency.Milliseconds(), a.Error, micros(a.At), a.DeliveryID, micros(a.Lease))
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if a.Status != DeliveryDelivered {
		// The attempt log keeps what the delivery's row will lose to the
		// next attempt; a 2xx answer stays on the row alone.
		if _, err = tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, at, status, response_code,
			response_body, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (delivery_id, at) DO NOTHING`, a.DeliveryID, micros(a.At), a.Status, code, a.ResponseBody,
			a.Latency.Milliseconds(), a.Error); err != nil {
			return false, err
		}
	}
	if a.Status == DeliveryDelivered {
		_, err = tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = NULL
			WHERE id = $1 AND failing_since IS NOT NULL`, a.EndpointID)
		return err == nil, err
	}
	if _, err = tx.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = $1
		WHERE id = $2 AND failing_since IS NULL`, micros(a.At), a.EndpointID); err != nil {
		return false, err
	}
	if a.DisableReason == "" {
		return true, nil
	}
	return true, s.disableEndpoint(ctx, tx, a.EndpointID, a.DisableReason, a.At)
}

// disableEndpoint disables an enabled endpoint and writes the
// EventWebhookDisabled event; an endpoint already disabled is left alone.
// The transaction that does so commits with a WAL flush even when it
// records attempts (webhookCommitUnflushed): the event is delivered to
// other endpoints under its own id, which must not vanish in a crash.
func (s *Store) disableEndpoint(ctx context.Context, tx *sql.Tx, endpointID, reason string, at time.Time) error {
	var projectID, url string
	err := tx.QueryRowContext(ctx, `UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $1, updated_at = $2
		WHERE id = $3 AND enabled RETURNING project_id, url`, reason, micros(at), endpointID).Scan(&projectID, &url)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
			return err
		}
	}
	data, err := json.Marshal(map[string]string{"webhook_id": endpointID, "url": url, "reason": reason})
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, insertEvent+` VALUES ($1, NULL, '', $2, 0, $3, $4)`,
		projectID, EventWebhookDisabled, string(data), micros(at))
	return err
}

// CreateTestDelivery queues a delivery of payload (a test event) to the
// project's endpoint, due now.
func (s *Store) CreateTestDelivery(ctx context.Context, projectID, endpointID string, payload []byte) (WebhookDelivery, error) {
	now := micros(s.now())
	id := newDeliveryID(now)
	res, err := s.db.ExecContext(ctx, `INSERT INTO webhook_deliveries
		(id, endpoint_id, event_id, payload, status, next_attempt_at, created_at, updated_at)
		SELECT $1, w.id, NULL, $2, $3, $4, $4, $4 FROM webhook_endpoints w WHERE w.id = $5 AND w.project_id = $6`,
		id, string(payload), DeliveryPending, now, endpointID, projectID)
	if err != nil {
		return WebhookDelivery{}, fmt.Errorf("test delivery to %s: %w", endpointID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return WebhookDelivery{}, fmt.Errorf("test delivery to %s: %w", endpointID, ErrNotFound)
	}
	return s.WebhookDelivery(ctx, projectID, endpointID, id)
}

// RetryWebhookDelivery makes the delivery due now, whatever its status: one
// more attempt (an exhausted delivery whose retry fails is exhausted
// again).
func (s *Store) RetryWebhookDelivery(ctx context.Context, projectID, endpointID, id string) (WebhookDelivery, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A delivered answer lives on the row alone (writeWebhookAttempt);
		// the attempt log keeps it before the next attempt replaces it.
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, at, status, response_code,
			response_body, latency_ms, error)
			SELECT d.id, d.updated_at, d.status, d.response_code, d.response_body, d.latency_ms, d.error
			FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
			WHERE d.id = $1 AND d.endpoint_id = $2 AND w.project_id = $3 AND d.status = $4
			ON CONFLICT (delivery_id, at) DO NOTHING`, id, endpointID, projectID, DeliveryDelivered); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $1, updated_at = $1
			WHERE id = $2 AND endpoint_id = (SELECT w.id FROM webhook_endpoints w WHERE w.id = $3 AND w.project_id = $4)`,
			micros(s.now()), id, endpointID, projectID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return WebhookDelivery{}, fmt.Errorf("retry webhook delivery %s: %w", id, err)
	}
	return s.WebhookDelivery(ctx, projectID, endpointID, id)
}

// ReplayWebhookEvents queues a new delivery, due now, of every event
// created in [since, until) that the endpoint's filters match now, enabled
// or not when the event was committed (a disabled endpoint gets no
// deliveries, so replay is how it catches up), and returns how many.
func (s *Store) ReplayWebhookEvents(ctx context.Context, projectID, endpointID string, since, until time.Time) (int, error) {
	if _, err := s.WebhookEndpoint(ctx, projectID, endpointID); err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	now := micros(s.now())
	res, err := s.db.ExecContext(ctx, `INSERT INTO webhook_deliveries
		(id, endpoint_id, event_id, status, next_attempt_at, created_at, updated_at)
		SELECT `+s.deliveryIDSQL("$2")+`, w.id, e.id, $1, $2, $2, $2
		FROM events e JOIN webhook_endpoints w ON w.id = $3 AND w.project_id = e.project_id
		WHERE e.project_id = $4 AND e.created_at >= $5 AND e.created_at < $6 AND `+s.endpointMatches(),
		DeliveryPending, now, endpointID, projectID, micros(since), micros(until))
	if err != nil {
		return 0, fmt.Errorf("replay to %s: %w", endpointID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("replay to %s: %w", endpointID, err)
	}
	return int(n), nil
}

// endpointMatches is the condition on endpoint w and event e of the
// fan-out trigger of migration 00015 (the same text, with NEW or new_events
// there for e): the event's type among w.events, and the message carrying
// one of w.tags, each when set.
func (s *Store) endpointMatches() string {
	if s.dialect == DialectPostgres {
		return `(w.events = '[]' OR w.events::jsonb ? e.type)
			AND (w.tags = '[]' OR EXISTS (SELECT 1 FROM message_tags t
				WHERE t.message_id = e.message_id AND w.tags::jsonb ? t.tag))`
	}
	return `(w.events = '[]' OR EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = e.type))
		AND (w.tags = '[]' OR EXISTS (SELECT 1 FROM message_tags t, json_each(w.tags) j
			WHERE t.message_id = e.message_id AND j.value = t.tag))`
}

// WebhookDelivery reads one delivery of the project's endpoint.
func (s *Store) WebhookDelivery(ctx context.Context, projectID, endpointID, id string) (WebhookDelivery, error) {
	ds, err := queryDeliveries(ctx, s.rdb, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries d
		JOIN webhook_endpoints w ON w.id = d.endpoint_id
		WHERE d.id = $1 AND d.endpoint_id = $2 AND w.project_id = $3`, id, endpointID, projectID)
	if err != nil {
		return WebhookDelivery{}, fmt.Errorf("webhook delivery %s: %w", id, err)
	}
	if len(ds) == 0 {
		return WebhookDelivery{}, fmt.Errorf("webhook delivery %s: %w", id, ErrNotFound)
	}
	return ds[0], nil
}

// DeliveryAttempt is one attempt of a webhook delivery as its log keeps
// it.
type DeliveryAttempt struct {
	// At is when the attempt ended.
	At time.Time
	// Status is the delivery's status the attempt left: delivered, failed
	// (to be tried again, or deferred by a 429 or 503) or exhausted.
	Status       string
	ResponseCode *int
	// ResponseBody is the start (1 KiB at most) of the answer.
	ResponseBody string
	LatencyMS    *int64
	Error        string
}

// WebhookDeliveryAttempts is the attempt log of one delivery of the
// project's endpoint, oldest first: the attempts that did not deliver
// (and the answers of earlier deliveries a retry sent again), then the
// delivered one (the delivery's own row).
func (s *Store) WebhookDeliveryAttempts(ctx context.Context, projectID, endpointID, id string) ([]DeliveryAttempt, error) {
	d, err := s.WebhookDelivery(ctx, projectID, endpointID, id)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT at, status, response_code, response_body, latency_ms, error
		FROM webhook_attempts WHERE delivery_id = $1 ORDER BY at`, id)
	if err != nil {
		return nil, fmt.Errorf("webhook delivery %s attempts: %w", id, err)
	}
	defer rows.Close()
	var out []DeliveryAttempt
	for rows.Next() {
		var a DeliveryAttempt
		var at int64
		var code, latency sql.NullInt64
		if err := rows.Scan(&at, &a.Status, &code, &a.ResponseBody, &latency, &a.Error); err != nil {
			return nil, fmt.Errorf("webhook delivery %s attempts: %w", id, err)
		}
		a.At = fromMicros(at)
		if code.Valid {
			c := int(code.Int64)
			a.ResponseCode = &c
		}
		if latency.Valid {
			a.LatencyMS = &latency.Int64
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("webhook delivery %s attempts: %w", id, err)
	}
	if d.Status == DeliveryDelivered && d.NextAttemptAt == nil { // not due again after a retry
		out = append(out, DeliveryAttempt{At: d.UpdatedAt, Status: d.Status, ResponseCode: d.ResponseCode,
			ResponseBody: d.ResponseBody, LatencyMS: d.LatencyMS, Error: d.Error})
	}
	return out, nil
}

// ListWebhookDeliveries lists the endpoint's deliveries matching f, newest
// first, with the cursor of the next page ("" after the last).
func (s *Store) ListWebhookDeliveries(ctx context.Context, projectID, endpointID string, f WebhookDeliveryFilter) ([]WebhookDelivery, string, error) {
	if _, err := s.WebhookEndpoint(ctx, projectID, endpointID); err != nil {
		return nil, "", err
	}
	cur, ok, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	c := &conds{}
	c.add("d.endpoint_id = " + c.arg(endpointID))
	if f.Status != "" {
		c.add("d.status = " + c.arg(f.Status))
	}
	if f.Since != nil {
		c.add("d.created_at >= " + c.arg(micros(*f.Since)))
	}
	if f.Until != nil {
		c.add("d.created_at < " + c.arg(micros(*f.Until)))
	}
	if ok {
		t := c.arg(cur.T)
		c.add("(d.created_at < " + t + " OR (d.created_at = " + t + " AND d.id < " + c.arg(cur.K) + "))")
	}
	limit := pageLimit(f.Page)
	ds, err := queryDeliveries(ctx, s.rdb, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries d`+c.sql()+
		` ORDER BY d.created_at DESC, d.id DESC LIMIT `+c.arg(limit+1), c.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list webhook deliveries: %w", err)
	}
	next := ""
	if len(ds) > limit {
		ds = ds[:limit]
		last := ds[limit-1]
		next = cursor{T: micros(last.CreatedAt), K: last.ID}.encode()
	}
	return ds, next, nil
}

func queryDeliveries(ctx context.Context, q querier, query string, args ...any) ([]WebhookDelivery, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WebhookDelivery
	for rows.Next() {
		var d WebhookDelivery
		var eventID, next, code, latency sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&d.ID, &d.EndpointID, &eventID, &d.Status, &d.Attempts, &next, &code,
			&d.ResponseBody, &latency, &d.Error, &created, &updated); err != nil {
			return nil, err
		}
		if eventID.Valid {
			d.EventID = &eventID.Int64
		}
		if code.Valid {
			c := int(code.Int64)
			d.ResponseCode = &c
		}
		if latency.Valid {
			d.LatencyMS = &latency.Int64
		}
		d.NextAttemptAt = timePtr(next)
		d.CreatedAt, d.UpdatedAt = fromMicros(created), fromMicros(updated)
		out = append(out, d)
	}
	return out, rows.Err()
}

// WebhookGauges are the dispatcher's gauges.
type WebhookGauges struct {
	// Backlog counts deliveries not yet delivered nor exhausted.
	Backlog int64
	// DisabledEndpoints counts endpoints that are disabled.
	DisabledEndpoints int64
}

// WebhookGauges counts the backlog and the disabled endpoints.
func (s *Store) WebhookGauges(ctx context.Context) (WebhookGauges, error) {
	var g WebhookGauges
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL),
		(SELECT count(*) FROM webhook_endpoints WHERE NOT enabled)`).Scan(&g.Backlog, &g.DisabledEndpoints)
	if err != nil {
		return WebhookGauges{}, fmt.Errorf("webhook gauges: %w", err)
	}
	return g, nil
}
