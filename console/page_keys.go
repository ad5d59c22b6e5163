package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// keysView is the data of templates/keys.html.
type keysView struct {
	Project store.Project
	Keys    []store.APIKey
	Scopes  []string
	// Name and Chosen are the create form as typed (kept when refused),
	// Invalid its bad fields.
	Name    string
	Chosen  map[string]bool
	Invalid []fieldProblem
	// Token is a new key's token, shown in this answer only; TokenName
	// its key's name.
	Token, TokenName string
	Notice           string
}

// keys is GET /console/keys (admin keys only): the keys of the project
// shown, the form to create one and revoke.
func (c *Console) keys(w http.ResponseWriter, r *http.Request, req *request) error {
	v := keysView{}
	if r.URL.Query().Has("revoked") {
		v.Notice = "The key is revoked: it is refused from its next request on."
	}
	return c.renderKeys(w, r, req, http.StatusOK, v)
}

func (c *Console) renderKeys(w http.ResponseWriter, r *http.Request, req *request, code int, v keysView) error {
	ctx := r.Context()
	p, err := c.deps.Store.ProjectByID(ctx, req.ProjectID)
	if err != nil {
		return err
	}
	if v.Keys, err = c.deps.Store.ListKeys(ctx, req.ProjectID); err != nil {
		return err
	}
	v.Project, v.Scopes = p, apikey.AllScopes()
	return c.renderCode(w, r, req, code, "keys.html", "Keys", v)
}

// createKey is POST /console/keys (name, scope…): the API's create
// (Ops.CreateKey) in the project shown; the token is shown once, in
// this answer (never stored in clear, never redirected through a URL).
func (c *Console) createKey(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	p, err := c.deps.Store.ProjectByID(ctx, req.ProjectID)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	name, scopes := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm["scope"]
	k, _, token, invalid, err := c.deps.Ops.CreateKey(ctx, p.Name, name, scopes)
	if err != nil {
		return err
	}
	if len(invalid) > 0 {
		chosen := map[string]bool{}
		for _, s := range scopes {
			chosen[s] = true
		}
		return c.renderKeys(w, r, req, http.StatusUnprocessableEntity,
			keysView{Name: name, Chosen: chosen, Invalid: fieldProblems(invalid)})
	}
	w.Header().Set("Cache-Control", "no-store")
	return c.renderKeys(w, r, req, http.StatusOK, keysView{Token: token, TokenName: k.Name})
}

// revokeKey is POST /console/keys/{id}/revoke: the API's revoke
// (Ops.RevokeKey), for a key of the project shown.
func (c *Console) revokeKey(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx, id := r.Context(), r.PathValue("id")
	k, err := c.deps.Store.KeyByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.ProjectID != req.ProjectID) {
		c.renderError(w, r, req, http.StatusNotFound, "There is no such key in this project.")
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.deps.Ops.RevokeKey(ctx, id); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/keys?revoked=1", http.StatusSeeOther)
	return nil
}
