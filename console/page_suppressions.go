package console

import "net/http"

// suppressions is GET /console/suppressions: a placeholder until the page is built.
func (c *Console) suppressions(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.render(w, r, req, "suppressions.html", "Suppressions", nil)
}
