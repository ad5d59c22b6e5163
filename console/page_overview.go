package console

import "net/http"

// overview is GET /console/overview: a placeholder until the page is built.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.render(w, r, req, "overview.html", "Overview", nil)
}
