package console

import "net/http"

// keys is GET /console/keys: a placeholder until the page is built.
func (c *Console) keys(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.render(w, r, req, "keys.html", "Keys", nil)
}
