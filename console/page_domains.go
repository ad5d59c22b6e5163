package console

import "net/http"

// domains is GET /console/domains: a placeholder until the page is built.
func (c *Console) domains(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.render(w, r, req, "domains.html", "Domains", nil)
}
