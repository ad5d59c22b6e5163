package console

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/mailgate/mailgate/store"
)

// deliveriesPageSize is the number of deliveries a page of the log shows.
const deliveriesPageSize = 50

// webhooksView is the data of templates/webhooks.html.
type webhooksView struct {
	Endpoints []store.WebhookEndpoint
}

// webhookView is the data of templates/webhook.html.
type webhookView struct {
	Endpoint   store.WebhookEndpoint
	Deliveries []store.WebhookDelivery
	Next       string
	// Secret is the new secret after a rotation, shown once.
	Secret string
	Notice string
}

// webhooks is GET /console/webhooks: the project's endpoints.
func (c *Console) webhooks(w http.ResponseWriter, r *http.Request, req *request) error {
	eps, err := c.deps.Store.ListWebhookEndpoints(r.Context(), req.ProjectID)
	if err != nil {
		return err
	}
	return c.render(w, r, req, "webhooks.html", "Webhooks", webhooksView{Endpoints: eps})
}

// webhook is GET /console/webhooks/{id}: the endpoint, its delivery log
// (each delivery's latest answer), retry, test and secret rotation.
func (c *Console) webhook(w http.ResponseWriter, r *http.Request, req *request) error {
	v := webhookView{}
	q := r.URL.Query()
	switch {
	case q.Has("tested"):
		v.Notice = "A webhook.test delivery is queued; it appears in the log."
	case q.Has("retried"):
		v.Notice = "The delivery is queued again."
	}
	return c.renderWebhook(w, r, req, v)
}

func (c *Console) renderWebhook(w http.ResponseWriter, r *http.Request, req *request, v webhookView) error {
	ctx, id := r.Context(), r.PathValue("id")
	ep, err := c.deps.Store.WebhookEndpoint(ctx, req.ProjectID, id)
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "There is no such webhook endpoint in this project.")
		return nil
	}
	if err != nil {
		return err
	}
	v.Endpoint = ep
	ds, next, err := c.deps.Store.ListWebhookDeliveries(ctx, req.ProjectID, id, store.WebhookDeliveryFilter{
		Page: store.Page{Limit: deliveriesPageSize, Cursor: r.URL.Query().Get("cursor")}})
	if errors.Is(err, store.ErrBadCursor) {
		ds, next, err = nil, "", nil
	}
	if err != nil {
		return err
	}
	v.Deliveries = ds
	if next != "" {
		v.Next = url.Values{"cursor": {next}}.Encode()
	}
	return c.render(w, r, req, "webhook.html", "Webhook "+ep.URL, v)
}

// deliveryView is the data of templates/webhook_delivery.html.
type deliveryView struct {
	Endpoint store.WebhookEndpoint
	Delivery store.WebhookDelivery
	// Attempts is every attempt's answer, oldest first.
	Attempts []store.DeliveryAttempt
}

// webhookDelivery is GET /console/webhooks/{id}/deliveries/{delivery}: one
// delivery with every attempt's answer.
func (c *Console) webhookDelivery(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, id, did := r.Context(), r.PathValue("id"), r.PathValue("delivery")
	ep, err := c.deps.Store.WebhookEndpoint(ctx, req.ProjectID, id)
	if err != nil {
		return c.webhookFailure(w, r, req, err)
	}
	d, err := c.deps.Store.WebhookDelivery(ctx, req.ProjectID, id, did)
	if err != nil {
		return c.webhookFailure(w, r, req, err)
	}
	attempts, err := c.deps.Store.WebhookDeliveryAttempts(ctx, req.ProjectID, id, did)
	if err != nil {
		return c.webhookFailure(w, r, req, err)
	}
	return c.render(w, r, req, "webhook_delivery.html", "Delivery "+d.ID,
		deliveryView{Endpoint: ep, Delivery: d, Attempts: attempts})
}

// webhookPath is the console page of the endpoint id.
func webhookPath(id string) string { return "/console/webhooks/" + url.PathEscape(id) }

// testWebhook is POST /console/webhooks/{id}/test: the API's test
// (Ops.TestWebhook).
func (c *Console) testWebhook(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	if _, err := c.deps.Ops.TestWebhook(r.Context(), req.ProjectID, id); err != nil {
		return c.webhookFailure(w, r, req, err)
	}
	http.Redirect(w, r, webhookPath(id)+"?tested=1", http.StatusSeeOther)
	return nil
}

// retryDelivery is POST /console/webhooks/{id}/deliveries/{delivery}/retry:
// the API's retry (the store's RetryWebhookDelivery).
func (c *Console) retryDelivery(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	if _, err := c.deps.Store.RetryWebhookDelivery(r.Context(), req.ProjectID, id, r.PathValue("delivery")); err != nil {
		return c.webhookFailure(w, r, req, err)
	}
	http.Redirect(w, r, webhookPath(id)+"?retried=1", http.StatusSeeOther)
	return nil
}

// rotateWebhookSecret is POST /console/webhooks/{id}/rotate-secret: the
// API's rotation (Ops.RotateWebhookSecret); the new secret is shown in
// this answer only (no redirect: it is never stored in clear).
func (c *Console) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, req *request) error {
	_, secret, err := c.deps.Ops.RotateWebhookSecret(r.Context(), req.ProjectID, r.PathValue("id"))
	if err != nil {
		return c.webhookFailure(w, r, req, err)
	}
	w.Header().Set("Cache-Control", "no-store")
	return c.renderWebhook(w, r, req, webhookView{Secret: secret,
		Notice: "The secret is rotated; the previous one keeps signing for 24 hours."})
}

// webhookFailure answers 404 for an endpoint or delivery not in the
// project; other errors are failures.
func (c *Console) webhookFailure(w http.ResponseWriter, r *http.Request, req *request, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "There is no such webhook endpoint or delivery in this project.")
		return nil
	}
	return err
}
