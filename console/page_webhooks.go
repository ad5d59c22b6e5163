package console

import "net/http"

// webhooks is GET /console/webhooks: a placeholder until the page is built.
func (c *Console) webhooks(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.render(w, r, req, "webhooks.html", "Webhooks", nil)
}
