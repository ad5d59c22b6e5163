package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/webhook"
)

const scopeWebhooks = apikey.ScopeWebhooks

// secretGrace is how long the previous secret signs after a rotation.
const secretGrace = 24 * time.Hour

func (s *Server) webhookRoutes(g *echo.Group) {
	g.POST("/webhooks", s.createWebhook, s.requireScope(scopeWebhooks))
	g.GET("/webhooks", s.listWebhooks, s.requireScope(scopeWebhooks))
	g.GET("/webhooks/:id", s.getWebhook, s.requireScope(scopeWebhooks))
	g.PATCH("/webhooks/:id", s.updateWebhook, s.requireScope(scopeWebhooks))
	g.DELETE("/webhooks/:id", s.deleteWebhook, s.requireScope(scopeWebhooks))
	g.POST("/webhooks/:id/rotate-secret", s.rotateWebhookSecret, s.requireScope(scopeWebhooks))
	g.POST("/webhooks/:id/test", s.testWebhook, s.requireScope(scopeWebhooks))
	g.GET("/webhooks/:id/deliveries", s.listWebhookDeliveries, s.requireScope(scopeWebhooks))
	g.GET("/webhooks/:id/deliveries/:delivery_id", s.getWebhookDelivery, s.requireScope(scopeWebhooks))
	g.POST("/webhooks/:id/deliveries/:delivery_id/retry", s.retryWebhookDelivery, s.requireScope(scopeWebhooks))
	g.POST("/webhooks/:id/replay", s.replayWebhook, s.requireScope(scopeWebhooks))
}

type webhookRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Tags        *[]string `json:"tags"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
}

type webhookView struct {
	ID                      string   `json:"id"`
	URL                     string   `json:"url"`
	Events                  []string `json:"events"`
	Tags                    []string `json:"tags"`
	Description             string   `json:"description"`
	Enabled                 bool     `json:"enabled"`
	DisabledReason          string   `json:"disabled_reason"`
	FailingSince            *string  `json:"failing_since"`
	PreviousSecretExpiresAt *string  `json:"previous_secret_expires_at"`
	CreatedAt               string   `json:"created_at"`
	UpdatedAt               string   `json:"updated_at"`
}

// createdWebhookView is an endpoint with its secret: the create and
// rotate answers, the only ones holding it.
type createdWebhookView struct {
	webhookView
	Secret string `json:"secret"`
}

type webhookDeliveryView struct {
	ID            string  `json:"id"`
	EventID       *string `json:"event_id"`
	Status        string  `json:"status"`
	Attempts      int     `json:"attempts"`
	NextAttemptAt *string `json:"next_attempt_at"`
	ResponseCode  *int    `json:"response_code"`
	ResponseBody  string  `json:"response_body"`
	LatencyMS     *int64  `json:"latency_ms"`
	Error         string  `json:"error"`
	CreatedAt     string  `json:"created_at"`
	UpdatedAt     string  `json:"updated_at"`
}

// deliveryAttemptView is one entry of a delivery's attempt_log.
type deliveryAttemptView struct {
	At           string `json:"at"`
	Status       string `json:"status"`
	ResponseCode *int   `json:"response_code"`
	ResponseBody string `json:"response_body"`
	LatencyMS    *int64 `json:"latency_ms"`
	Error        string `json:"error"`
}

func toWebhookView(ep store.WebhookEndpoint) webhookView {
	v := webhookView{ID: ep.ID, URL: ep.URL, Events: ep.Events, Tags: ep.Tags, Description: ep.Description,
		Enabled: ep.Enabled, DisabledReason: ep.DisabledReason, FailingSince: optTime(ep.FailingSince),
		PreviousSecretExpiresAt: optTime(ep.PreviousSecretExpiresAt),
		CreatedAt:               timeString(ep.CreatedAt), UpdatedAt: timeString(ep.UpdatedAt)}
	if v.Events == nil {
		v.Events = []string{}
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	return v
}

func toWebhookDeliveryView(d store.WebhookDelivery) webhookDeliveryView {
	v := webhookDeliveryView{ID: d.ID, Status: d.Status, Attempts: d.Attempts, NextAttemptAt: optTime(d.NextAttemptAt),
		ResponseCode: d.ResponseCode, ResponseBody: d.ResponseBody, LatencyMS: d.LatencyMS, Error: d.Error,
		CreatedAt: timeString(d.CreatedAt), UpdatedAt: timeString(d.UpdatedAt)}
	if d.EventID != nil {
		id := strconv.FormatInt(*d.EventID, 10)
		v.EventID = &id
	}
	return v
}

// checkWebhookURL is the SSRF guard's decision on url at this moment, as
// a 422 naming the rule (never the address a name resolved to).
func (s *Server) checkWebhookURL(c echo.Context, url string) error {
	err := s.webhooks.CheckEndpoint(c.Request().Context(), url)
	if errors.Is(err, webhook.ErrBadURL) || errors.Is(err, webhook.ErrForbiddenAddress) {
		return validationProblem([]FieldError{{Field: "/url", Message: err.Error()}})
	}
	return err
}

// sealSecret makes a secret for the endpoint id and seals it.
func (s *Server) sealSecret(id string) (secret string, sealed []byte, err error) {
	if s.deps.Keyring == nil {
		return "", nil, errors.New("no master keyring configured: cannot store webhook secrets")
	}
	if secret, err = webhook.NewSecret(); err != nil {
		return "", nil, err
	}
	sealed, err = s.deps.Keyring.Seal([]byte(secret), webhook.SealAAD(id))
	return secret, sealed, err
}

// createWebhook is POST /v1/webhooks: check the URL, make and seal a
// secret, store the endpoint, answer 201 with the secret.
func (s *Server) createWebhook(c echo.Context) error {
	var req webhookRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if req.URL == nil {
		return validationProblem([]FieldError{{Field: "/url", Message: "is required"}})
	}
	if err := s.checkWebhookURL(c, *req.URL); err != nil {
		return err
	}
	id := uuid.Must(uuid.NewV7()).String()
	secret, sealed, err := s.sealSecret(id)
	if err != nil {
		return err
	}
	ep := store.WebhookEndpoint{ID: id, ProjectID: caller(c).ProjectID, URL: *req.URL, Enabled: true,
		SecretSealed: sealed, CreatedAt: s.cfg.Now()}
	if req.Events != nil {
		ep.Events = *req.Events
	}
	if req.Tags != nil {
		ep.Tags = *req.Tags
	}
	if req.Description != nil {
		ep.Description = *req.Description
	}
	if req.Enabled != nil {
		ep.Enabled = *req.Enabled
	}
	ep, err = s.deps.Store.CreateWebhookEndpoint(c.Request().Context(), ep)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, createdWebhookView{webhookView: toWebhookView(ep), Secret: secret})
}

// listWebhooks is GET /v1/webhooks, oldest first.
func (s *Server) listWebhooks(c echo.Context) error {
	eps, err := s.deps.Store.ListWebhookEndpoints(c.Request().Context(), caller(c).ProjectID)
	if err != nil {
		return err
	}
	out := struct {
		Data []webhookView `json:"data"`
	}{Data: make([]webhookView, len(eps))}
	for i, ep := range eps {
		out.Data[i] = toWebhookView(ep)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getWebhook(c echo.Context) error {
	ep, err := s.deps.Store.WebhookEndpoint(c.Request().Context(), caller(c).ProjectID, c.Param("id"))
	if err != nil {
		return webhookErr(err)
	}
	return c.JSON(http.StatusOK, toWebhookView(ep))
}

// updateWebhook is PATCH /v1/webhooks/{id}.
func (s *Server) updateWebhook(c echo.Context) error {
	var req webhookRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if req.URL != nil {
		if err := s.checkWebhookURL(c, *req.URL); err != nil {
			return err
		}
	}
	ep, err := s.deps.Store.UpdateWebhookEndpoint(c.Request().Context(), caller(c).ProjectID, c.Param("id"),
		store.WebhookEndpointPatch{URL: req.URL, Events: req.Events, Tags: req.Tags, Description: req.Description,
			Enabled: req.Enabled})
	if err != nil {
		return webhookErr(err)
	}
	return c.JSON(http.StatusOK, toWebhookView(ep))
}

func (s *Server) deleteWebhook(c echo.Context) error {
	if err := s.deps.Store.DeleteWebhookEndpoint(c.Request().Context(), caller(c).ProjectID, c.Param("id")); err != nil {
		return webhookErr(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// rotateWebhookSecret is POST /v1/webhooks/{id}/rotate-secret: a new
// secret, the old one signing too for the grace period.
func (s *Server) rotateWebhookSecret(c echo.Context) error {
	ep, secret, err := s.RotateWebhookSecret(c.Request().Context(), caller(c).ProjectID, c.Param("id"))
	if err != nil {
		return webhookErr(err)
	}
	return c.JSON(http.StatusOK, createdWebhookView{webhookView: toWebhookView(ep), Secret: secret})
}

// RotateWebhookSecret is the rotate operation (the API's and the
// console's): a new secret for the project's endpoint id, returned once;
// the old one signs too for the grace period. store.ErrNotFound for
// another project's or no endpoint.
func (s *Server) RotateWebhookSecret(ctx context.Context, projectID, id string) (store.WebhookEndpoint, string, error) {
	if _, err := s.deps.Store.WebhookEndpoint(ctx, projectID, id); err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	secret, sealed, err := s.sealSecret(id)
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	ep, err := s.deps.Store.RotateWebhookSecret(ctx, projectID, id, sealed, s.cfg.Now().Add(secretGrace))
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	return ep, secret, nil
}

// testWebhook is POST /v1/webhooks/{id}/test: a webhook.test delivery.
func (s *Server) testWebhook(c echo.Context) error {
	d, err := s.TestWebhook(c.Request().Context(), caller(c).ProjectID, c.Param("id"))
	if err != nil {
		return webhookErr(err)
	}
	return c.JSON(http.StatusAccepted, toWebhookDeliveryView(d))
}

// TestWebhook is the test operation (the API's and the console's): a
// webhook.test delivery queued to the project's endpoint id.
// store.ErrNotFound for another project's or no endpoint.
func (s *Server) TestWebhook(ctx context.Context, projectID, id string) (store.WebhookDelivery, error) {
	data, err := json.Marshal(map[string]string{"webhook_id": id})
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	body, err := json.Marshal(webhook.Payload{Type: webhook.TestEventType, Timestamp: s.cfg.Now().UTC(), Data: data})
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	return s.deps.Store.CreateTestDelivery(ctx, projectID, id, body)
}

// listWebhookDeliveries is GET /v1/webhooks/{id}/deliveries, newest first.
func (s *Server) listWebhookDeliveries(c echo.Context) error {
	q := c.QueryParams()
	page, err := pageParams(q)
	if err != nil {
		return err
	}
	since, until, err := timeRange(q)
	if err != nil {
		return err
	}
	switch q.Get("status") {
	case "", store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryExhausted:
	default:
		return queryProblem("status", "must be one of pending, delivered, failed, exhausted")
	}
	ds, next, err := s.deps.Store.ListWebhookDeliveries(c.Request().Context(), caller(c).ProjectID, c.Param("id"),
		store.WebhookDeliveryFilter{Status: q.Get("status"), Since: since, Until: until, Page: page})
	if err != nil {
		return webhookErr(listErr(err))
	}
	out := listView[webhookDeliveryView]{Data: make([]webhookDeliveryView, len(ds)), NextCursor: cursorPtr(next)}
	for i, d := range ds {
		out.Data[i] = toWebhookDeliveryView(d)
	}
	return c.JSON(http.StatusOK, out)
}

// getWebhookDelivery is GET …/deliveries/{delivery_id}: the delivery and
// its attempt_log, every attempt's answer oldest first.
func (s *Server) getWebhookDelivery(c echo.Context) error {
	ctx, projectID := c.Request().Context(), caller(c).ProjectID
	d, err := s.deps.Store.WebhookDelivery(ctx, projectID, c.Param("id"), c.Param("delivery_id"))
	if err != nil {
		return notFoundAs(err, "webhook endpoint or delivery")
	}
	attempts, err := s.deps.Store.WebhookDeliveryAttempts(ctx, projectID, c.Param("id"), c.Param("delivery_id"))
	if err != nil {
		return notFoundAs(err, "webhook endpoint or delivery")
	}
	out := struct {
		webhookDeliveryView
		AttemptLog []deliveryAttemptView `json:"attempt_log"`
	}{toWebhookDeliveryView(d), make([]deliveryAttemptView, len(attempts))}
	for i, a := range attempts {
		out.AttemptLog[i] = deliveryAttemptView{At: timeString(a.At), Status: a.Status, ResponseCode: a.ResponseCode,
			ResponseBody: a.ResponseBody, LatencyMS: a.LatencyMS, Error: a.Error}
	}
	return c.JSON(http.StatusOK, out)
}

// retryWebhookDelivery is POST …/deliveries/{delivery_id}/retry.
func (s *Server) retryWebhookDelivery(c echo.Context) error {
	d, err := s.deps.Store.RetryWebhookDelivery(c.Request().Context(), caller(c).ProjectID, c.Param("id"),
		c.Param("delivery_id"))
	if err != nil {
		return notFoundAs(err, "webhook endpoint or delivery")
	}
	return c.JSON(http.StatusAccepted, toWebhookDeliveryView(d))
}

// maxReplayRange is the longest [since, until) one replay covers, so that
// one request queues a bounded number of deliveries in one statement.
const maxReplayRange = 7 * 24 * time.Hour

// replayWebhook is POST /v1/webhooks/{id}/replay {since, until}: both
// required, since before until, at most maxReplayRange apart.
func (s *Server) replayWebhook(c echo.Context) error {
	var req struct {
		Since *time.Time `json:"since"`
		Until *time.Time `json:"until"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	var errs []FieldError
	if req.Since == nil {
		errs = append(errs, FieldError{Field: "/since", Message: "is required"})
	}
	if req.Until == nil {
		errs = append(errs, FieldError{Field: "/until", Message: "is required"})
	}
	if len(errs) > 0 {
		return validationProblem(errs)
	}
	switch {
	case !req.Since.Before(*req.Until):
		return validationProblem([]FieldError{{Field: "/until", Message: "must be after since"}})
	case req.Until.Sub(*req.Since) > maxReplayRange:
		return validationProblem([]FieldError{{Field: "/until", Message: "must be at most 7 days after since"}})
	}
	n, err := s.deps.Store.ReplayWebhookEvents(c.Request().Context(), caller(c).ProjectID, c.Param("id"),
		*req.Since, *req.Until)
	if err != nil {
		return webhookErr(err)
	}
	return c.JSON(http.StatusAccepted, map[string]int{"queued": n})
}

// webhookErr is a 404 naming the endpoint when err is ErrNotFound.
func webhookErr(err error) error { return notFoundAs(err, "webhook endpoint") }

// notFoundAs is a 404 naming what when err is ErrNotFound, else err.
func notFoundAs(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem(what)
	}
	return err
}
