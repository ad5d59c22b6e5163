package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/store"
)

// FeedbackApplier applies the events of a verified provider notification
// to the messages of projectID and says how many changed a recipient
// (inbound.Feedback). An error means nothing more can be trusted to have
// been written: the provider is asked to retry.
type FeedbackApplier interface {
	Apply(ctx context.Context, provider, projectID string, events []feedback.Event) (int, error)
}

// maxFeedbackBody bounds a provider notification (8 MiB): SNS messages
// are at most 256 KiB, and SendGrid and Mailgun batches stay well under.
const maxFeedbackBody = 8 << 20

// maxCertBody bounds a fetched SNS signing certificate.
const maxCertBody = 64 << 10

// feedbackRoutes are the configuration routes (scope webhooks: like a
// webhook endpoint, a feedback endpoint is an HTTP callback with its own
// secret, configured by whoever wires mailgate to the outside) and the
// receiving route, which carries no API key: the provider calls it, and its
// URL token names the project while the provider's own scheme
// authenticates the body.
func (s *Server) feedbackRoutes(e *echo.Echo, g *echo.Group) {
	g.PUT("/feedback/:provider", s.putFeedback, s.requireScope(scopeWebhooks))
	g.GET("/feedback/:provider", s.getFeedback, s.requireScope(scopeWebhooks))
	g.DELETE("/feedback/:provider", s.deleteFeedback, s.requireScope(scopeWebhooks))
	// Limited per endpoint at the API rate limit: every provider retries a 429.
	e.POST(feedbackReceivePath, s.receiveFeedback, s.rateLimitBy("feedback",
		func(c echo.Context) string { return c.Param("provider") + "/" + c.Param("token") },
		"this feedback endpoint is over its request rate; retry later"))
}

type feedbackRequest struct {
	TopicARN   *string `json:"topic_arn"`
	PublicKey  *string `json:"public_key"`
	SigningKey *string `json:"signing_key"`
	Username   *string `json:"username"`
	Password   *string `json:"password"`
}

type feedbackView struct {
	Provider  string `json:"provider"`
	Path      string `json:"path"`
	TopicARN  string `json:"topic_arn,omitempty"`
	PublicKey string `json:"public_key,omitempty"`
	Username  string `json:"username,omitempty"`
	HasSecret bool   `json:"has_secret"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func toFeedbackView(ep store.FeedbackEndpoint) feedbackView {
	v := feedbackView{Provider: ep.Provider, Path: "/v1/feedback/" + ep.Provider + "/" + ep.ID,
		HasSecret: ep.SecretSealed != nil, CreatedAt: timeString(ep.CreatedAt), UpdatedAt: timeString(ep.UpdatedAt)}
	switch ep.Provider {
	case feedback.ProviderSES:
		v.TopicARN = ep.Public
	case feedback.ProviderSendGrid:
		v.PublicKey = ep.Public
	case feedback.ProviderPostmark:
		v.Username = ep.Public
	}
	return v
}

// feedbackProvider is the route's provider, or a 404.
func feedbackProvider(c echo.Context) (string, error) {
	p := c.Param("provider")
	if !slices.Contains(feedback.Providers, p) {
		return "", notFoundProblem("feedback provider " + p)
	}
	return p, nil
}

// feedbackSettings checks req for provider: the public setting and the
// secret it takes, every other field refused.
func feedbackSettings(provider string, req feedbackRequest) (public, secret string, errs []FieldError) {
	fields := map[string]*string{"/topic_arn": req.TopicARN, "/public_key": req.PublicKey,
		"/signing_key": req.SigningKey, "/username": req.Username, "/password": req.Password}
	var needed []string
	switch provider {
	case feedback.ProviderSES:
		needed = []string{"/topic_arn"}
	case feedback.ProviderSendGrid:
		needed = []string{"/public_key"}
	case feedback.ProviderMailgun:
		needed = []string{"/signing_key"}
	case feedback.ProviderPostmark:
		needed = []string{"/username", "/password"}
	}
	for _, f := range []string{"/topic_arn", "/public_key", "/signing_key", "/username", "/password"} {
		v, want := fields[f], slices.Contains(needed, f)
		switch {
		case want && (v == nil || strings.TrimSpace(*v) == ""):
			errs = append(errs, FieldError{Field: f, Message: "is required for " + provider})
		case !want && v != nil:
			errs = append(errs, FieldError{Field: f, Message: "is not used by " + provider})
		}
	}
	if len(errs) > 0 {
		return "", "", errs
	}
	switch provider {
	case feedback.ProviderSES:
		public = *req.TopicARN
		if !strings.HasPrefix(public, "arn:aws:sns:") && !strings.HasPrefix(public, "arn:aws-cn:sns:") {
			errs = append(errs, FieldError{Field: "/topic_arn", Message: "is not an SNS topic ARN"})
		}
	case feedback.ProviderSendGrid:
		public = *req.PublicKey
		if _, err := feedback.ParseSendGridKey(public); err != nil {
			errs = append(errs, FieldError{Field: "/public_key", Message: "is not a base64 ECDSA P-256 public key"})
		}
	case feedback.ProviderMailgun:
		secret = *req.SigningKey
	case feedback.ProviderPostmark:
		public, secret = *req.Username, *req.Password
		if len(secret) < 16 {
			errs = append(errs, FieldError{Field: "/password", Message: "must be at least 16 characters"})
		}
	}
	return public, secret, errs
}

// newFeedbackToken is a random URL token of 128 bits.
func newFeedbackToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// putFeedback is PUT /v1/feedback/{provider}: configure (or replace) how
// the project receives the provider's notifications. The URL token stays
// the same across replacements.
func (s *Server) putFeedback(c echo.Context) error {
	provider, err := feedbackProvider(c)
	if err != nil {
		return err
	}
	var req feedbackRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	public, secret, errs := feedbackSettings(provider, req)
	if len(errs) > 0 {
		return validationProblem(errs)
	}
	if secret != "" && s.deps.Keyring == nil {
		return errors.New("no master keyring configured: cannot store feedback secrets")
	}
	ctx := c.Request().Context()
	projectID := caller(c).ProjectID
	// The secret is sealed to the endpoint's id. When another request
	// creates the endpoint between the look-up and the write, the store
	// refuses an id other than the one it kept and says which: seal to
	// that one. A few rounds suffice, since only a creation races.
	id := ""
	if old, err := s.deps.Store.ProjectFeedbackEndpoint(ctx, projectID, provider); err == nil {
		id = old.ID
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for range 3 {
		if id == "" {
			id = newFeedbackToken()
		}
		ep := store.FeedbackEndpoint{ID: id, ProjectID: projectID, Provider: provider, Public: public}
		if secret != "" {
			if ep.SecretSealed, err = s.deps.Keyring.Seal([]byte(secret), feedback.SealAAD(ep.ID)); err != nil {
				return err
			}
		}
		stored, err := s.deps.Store.PutFeedbackEndpoint(ctx, ep)
		if errors.Is(err, store.ErrFeedbackEndpointID) {
			id = stored.ID
			continue
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, toFeedbackView(stored))
	}
	return errors.New("put feedback endpoint: its id kept changing")
}

func (s *Server) getFeedback(c echo.Context) error {
	provider, err := feedbackProvider(c)
	if err != nil {
		return err
	}
	ep, err := s.deps.Store.ProjectFeedbackEndpoint(c.Request().Context(), caller(c).ProjectID, provider)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("feedback endpoint " + provider)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toFeedbackView(ep))
}

func (s *Server) deleteFeedback(c echo.Context) error {
	provider, err := feedbackProvider(c)
	if err != nil {
		return err
	}
	err = s.deps.Store.DeleteFeedbackEndpoint(c.Request().Context(), caller(c).ProjectID, provider)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("feedback endpoint " + provider)
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// feedbackResult is the answer to an accepted notification.
type feedbackResult struct {
	Events  int `json:"events"`
	Applied int `json:"applied"`
}

// receiveFeedback is POST /v1/feedback/{provider}/{token}: verify the
// notification by the provider's scheme, then apply its events. Anything
// that does not verify is refused, counted and never acted on.
func (s *Server) receiveFeedback(c echo.Context) error {
	provider, err := feedbackProvider(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ep, err := s.deps.Store.FeedbackEndpointByID(ctx, provider, c.Param("token"))
	if errors.Is(err, store.ErrNotFound) {
		s.metrics.feedbackRefused.WithLabelValues(provider, "unknown_endpoint").Inc()
		return notFoundProblem("feedback endpoint")
	}
	if err != nil {
		return err
	}
	// A body over a limit is a 413, counted (too_large) by the error
	// handler, which also sees those refused before this handler runs.
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxFeedbackBody+1))
	if errors.Is(err, echo.ErrStatusRequestEntityTooLarge) {
		return tooLargeProblem("the request body is over the size limit")
	}
	if err != nil {
		s.metrics.feedbackRefused.WithLabelValues(provider, "unreadable").Inc()
		return malformedProblem("the body could not be read")
	}
	if len(body) > maxFeedbackBody {
		return tooLargeProblem("a feedback notification is at most 8 MiB")
	}
	if s.deps.Feedback == nil {
		return unavailableProblem("provider feedback is not enabled on this server")
	}
	n, err := s.verifyFeedback(c, ep, body)
	if err != nil && feedback.Reason(err) == "other" {
		return err // ours (the keyring), not the notification's
	}
	if err != nil {
		s.metrics.feedbackRefused.WithLabelValues(provider, feedback.Reason(err)).Inc()
		return feedbackProblem(provider, err)
	}
	if n.SubscribeURL != "" {
		if err := s.confirmSubscription(ctx, n.SubscribeURL); err != nil {
			return unavailableProblem("the SNS subscription could not be confirmed; SNS will send the confirmation again")
		}
	}
	applied, err := s.deps.Feedback.Apply(ctx, provider, ep.ProjectID, n.Events)
	if err != nil {
		s.releaseFeedbackToken(ctx, n.Token)
		return err
	}
	return c.JSON(http.StatusOK, feedbackResult{Events: len(n.Events), Applied: applied})
}

// releaseFeedbackToken forgets the one-time token of a notification whose
// events could not be stored, so that the provider's retry (the same
// token) is taken rather than refused as a replay. Applying is idempotent
// per provider event id, so a retry never applies twice.
func (s *Server) releaseFeedbackToken(ctx context.Context, token string) {
	if token == "" {
		return
	}
	if err := s.deps.FeedbackTokens.Release(context.WithoutCancel(ctx), token); err != nil {
		s.deps.Log.Warn("release a feedback token", "err", err)
	}
}

// verifyFeedback checks body by the endpoint's provider scheme.
func (s *Server) verifyFeedback(c echo.Context, ep store.FeedbackEndpoint, body []byte) (feedback.Notification, error) {
	ctx, req := c.Request().Context(), c.Request()
	now := s.cfg.Now
	switch ep.Provider {
	case feedback.ProviderSES:
		v := &feedback.SNS{TopicARN: ep.Public, Fetch: s.fetchSNS, Now: now, Certs: s.snsCerts, Roots: s.deps.FeedbackRoots}
		return v.Verify(ctx, body)
	case feedback.ProviderSendGrid:
		v := &feedback.SendGrid{PublicKey: ep.Public, Now: now}
		return v.Verify(req.Header.Get(feedback.SendGridSignatureHeader), req.Header.Get(feedback.SendGridTimestampHeader), body)
	}
	secret, err := s.openFeedbackSecret(ep)
	if err != nil {
		return feedback.Notification{}, err
	}
	if ep.Provider == feedback.ProviderMailgun {
		v := &feedback.Mailgun{SigningKey: secret, Tokens: s.deps.FeedbackTokens, Scope: ep.ProjectID, Now: now}
		return v.Verify(ctx, body)
	}
	user, pass, ok := req.BasicAuth()
	v := &feedback.Postmark{Username: ep.Public, Password: secret}
	return v.Verify(user, pass, ok, body)
}

func (s *Server) openFeedbackSecret(ep store.FeedbackEndpoint) (string, error) {
	if s.deps.Keyring == nil || ep.SecretSealed == nil {
		return "", errors.New("feedback secret cannot be opened: no master keyring")
	}
	b, err := s.deps.Keyring.Open(ep.SecretSealed, feedback.SealAAD(ep.ID))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// fetchSNS fetches an SNS URL (already checked against the SNS host
// pattern) or an issuer certificate URL (checked by
// feedback.CheckIssuerURL) with Deps.FeedbackFetch, else the SSRF-guarded
// webhook client; an issuer URL may be http, as AWS publishes them.
func (s *Server) fetchSNS(ctx context.Context, rawURL string) ([]byte, error) {
	if s.deps.FeedbackFetch != nil {
		return s.deps.FeedbackFetch(ctx, rawURL)
	}
	if strings.HasPrefix(rawURL, "http://") && feedback.CheckIssuerURL(rawURL) == nil {
		return s.issuers.Get(ctx, rawURL, maxCertBody)
	}
	return s.webhooks.Get(ctx, rawURL, maxCertBody)
}

// confirmSubscription visits an SNS SubscribeURL (on an SNS host only).
func (s *Server) confirmSubscription(ctx context.Context, rawURL string) error {
	if _, err := feedback.CheckSNSURL(rawURL); err != nil {
		return err
	}
	_, err := s.fetchSNS(ctx, rawURL)
	return err
}
