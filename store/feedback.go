package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// FeedbackEndpoint is how one project receives one upstream provider's
// notifications (see migration 00014).
type FeedbackEndpoint struct {
	// ID is the random token of the receiving URL; kept when the endpoint
	// is configured again.
	ID        string
	ProjectID string
	// Provider is ses, sendgrid, mailgun or postmark.
	Provider string
	// Public is the provider's non-secret setting (SNS topic ARN, SendGrid
	// verification key, Postmark user name).
	Public string
	// SecretSealed is the sealed secret (Mailgun signing key, Postmark
	// password), nil when there is none.
	SecretSealed []byte
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const feedbackColumns = `id, project_id, provider, public, secret_sealed, created_at, updated_at`

// ErrFeedbackEndpointID: PutFeedbackEndpoint was given an id other than
// the existing endpoint's (another request created the endpoint since the
// caller looked): nothing was written. The caller seals the secret to the
// existing endpoint's id and tries again.
var ErrFeedbackEndpointID = errors.New("the feedback endpoint has another id")

// PutFeedbackEndpoint creates or replaces the project's endpoint for
// ep.Provider. An existing endpoint keeps its id (the URL configured at
// the provider stays valid), and is replaced only when ep.ID is that id:
// ep.SecretSealed is sealed to ep.ID (feedback.SealAAD), so a secret
// sealed to any other id would never open. Otherwise nothing is written,
// the error is ErrFeedbackEndpointID and the endpoint returned is the
// existing one (zero when it was deleted meanwhile).
func (s *Store) PutFeedbackEndpoint(ctx context.Context, ep FeedbackEndpoint) (FeedbackEndpoint, error) {
	if ep.ID == "" || ep.ProjectID == "" || ep.Provider == "" {
		return FeedbackEndpoint{}, errors.New("put feedback endpoint: id, project and provider are required")
	}
	now := micros(s.now())
	res, err := s.db.ExecContext(ctx, `INSERT INTO feedback_endpoints (`+feedbackColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (project_id, provider) DO UPDATE SET public = excluded.public,
			secret_sealed = excluded.secret_sealed, updated_at = excluded.updated_at
		WHERE feedback_endpoints.id = excluded.id`,
		ep.ID, ep.ProjectID, ep.Provider, ep.Public, ep.SecretSealed, now)
	if err != nil {
		return FeedbackEndpoint{}, fmt.Errorf("put feedback endpoint: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return FeedbackEndpoint{}, fmt.Errorf("put feedback endpoint: %w", err)
	}
	if n == 0 {
		// The existing endpoint, read where it was written, so that the
		// caller can seal to its id; none when it was deleted meanwhile.
		cur, _ := s.queryFeedback(ctx, s.db, `project_id = $1 AND provider = $2`, ep.ProjectID, ep.Provider)
		return cur, fmt.Errorf("put feedback endpoint %s: %w", ep.Provider, ErrFeedbackEndpointID)
	}
	return s.queryFeedback(ctx, s.db, `project_id = $1 AND provider = $2`, ep.ProjectID, ep.Provider)
}

// ProjectFeedbackEndpoint is the project's endpoint for provider;
// ErrNotFound when there is none.
func (s *Store) ProjectFeedbackEndpoint(ctx context.Context, projectID, provider string) (FeedbackEndpoint, error) {
	return s.queryFeedback(ctx, s.rdb, `project_id = $1 AND provider = $2`, projectID, provider)
}

// FeedbackEndpointByID is the endpoint whose URL token is id for provider;
// ErrNotFound when there is none.
func (s *Store) FeedbackEndpointByID(ctx context.Context, provider, id string) (FeedbackEndpoint, error) {
	return s.queryFeedback(ctx, s.rdb, `id = $1 AND provider = $2`, id, provider)
}

// DeleteFeedbackEndpoint removes the project's endpoint for provider;
// ErrNotFound when there is none.
func (s *Store) DeleteFeedbackEndpoint(ctx context.Context, projectID, provider string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM feedback_endpoints WHERE project_id = $1 AND provider = $2`,
		projectID, provider)
	if err != nil {
		return fmt.Errorf("delete feedback endpoint: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("feedback endpoint %s: %w", provider, ErrNotFound)
	}
	return nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) queryFeedback(ctx context.Context, db queryRower, where string, args ...any) (FeedbackEndpoint, error) {
	var ep FeedbackEndpoint
	var created, updated int64
	err := db.QueryRowContext(ctx, `SELECT `+feedbackColumns+` FROM feedback_endpoints WHERE `+where, args...).
		Scan(&ep.ID, &ep.ProjectID, &ep.Provider, &ep.Public, &ep.SecretSealed, &created, &updated)
	if err != nil {
		return FeedbackEndpoint{}, fmt.Errorf("feedback endpoint: %w", notFound(err))
	}
	ep.CreatedAt, ep.UpdatedAt = fromMicros(created), fromMicros(updated)
	return ep, nil
}
