package console

import "net/http"

// inbound is GET /console/inbound: a placeholder until the page is built.
func (c *Console) inbound(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.render(w, r, req, "inbound.html", "Inbound", nil)
}
