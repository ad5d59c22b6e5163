package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// projectNameRE is the shape of a project name.
var projectNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

type projectView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

type keyView struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Project   string   `json:"project"`
	Scopes    []string `json:"scopes"`
	CreatedAt string   `json:"created_at"`
	RevokedAt *string  `json:"revoked_at"`
	// Token is present once, in the answer to the create.
	Token string `json:"token,omitempty"`
}

func toProjectView(p store.Project) projectView {
	return projectView{ID: p.ID, Name: p.Name, CreatedAt: timeString(p.CreatedAt)}
}

// createProject is POST /v1/projects.
func (s *Server) createProject(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	if !projectNameRE.MatchString(req.Name) {
		return validationProblem([]FieldError{{Field: "/name",
			Message: "must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit"}})
	}
	p, err := s.deps.Store.CreateProject(c.Request().Context(), req.Name)
	if errors.Is(err, store.ErrConflict) {
		return newProblem(http.StatusConflict, "conflict", "Conflict", "a project with this name exists")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toProjectView(p))
}

// listProjects is GET /v1/projects.
func (s *Server) listProjects(c echo.Context) error {
	ps, err := s.deps.Store.ListProjects(c.Request().Context())
	if err != nil {
		return err
	}
	out := listView[projectView]{Data: make([]projectView, len(ps))}
	for i, p := range ps {
		out.Data[i] = toProjectView(p)
	}
	return c.JSON(http.StatusOK, struct {
		Data []projectView `json:"data"`
	}{out.Data})
}

// createKey is POST /v1/keys: the token is in this answer and nowhere else.
func (s *Server) createKey(c echo.Context) error {
	var req struct {
		Name    string   `json:"name"`
		Project string   `json:"project"`
		Scopes  []string `json:"scopes"`
	}
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	k, project, tok, invalid, err := s.CreateKey(c.Request().Context(), req.Project, req.Name, req.Scopes)
	if err != nil {
		return err
	}
	if len(invalid) > 0 {
		return validationProblem(fieldList(invalid))
	}
	v := toKeyView(k, project)
	v.Token = tok
	return c.JSON(http.StatusCreated, v)
}

// CreateKey is POST /v1/keys's operation (the console's too): a key of the
// project named projectName ("" is the default project) with name and
// scopes. It returns the key, its project's name and its token (shown
// once, stored only as a hash); invalid names each bad field ("/name",
// "/project", "/scopes/N").
func (s *Server) CreateKey(ctx context.Context, projectName, name string, scopes []string) (k store.APIKey, project, token string, invalid map[string]string, err error) {
	if projectName == "" {
		projectName = store.DefaultProjectName
	}
	if errs := checkKeyRequest(name, scopes); len(errs) > 0 {
		return store.APIKey{}, "", "", fieldMap(errs), nil
	}
	p, err := s.deps.Store.ProjectByName(ctx, projectName)
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, "", "", map[string]string{"/project": "no such project"}, nil
	}
	if err != nil {
		return store.APIKey{}, "", "", nil, err
	}
	k, token, err = NewKey(p.ID, name, scopes, s.cfg.Now())
	if err != nil {
		return store.APIKey{}, "", "", nil, err
	}
	if err := s.deps.Store.CreateKey(ctx, k); err != nil {
		return store.APIKey{}, "", "", nil, err
	}
	return k, p.Name, token, nil, nil
}

// checkKeyRequest names what is wrong with a key's name and scopes.
func checkKeyRequest(name string, scopes []string) []FieldError {
	var errs []FieldError
	if name == "" || len(name) > 100 {
		errs = append(errs, FieldError{Field: "/name", Message: "must be 1 to 100 characters"})
	}
	if len(scopes) == 0 {
		errs = append(errs, FieldError{Field: "/scopes", Message: "at least one scope is required"})
	}
	for i, sc := range scopes {
		if !apikey.ValidScope(sc) {
			errs = append(errs, FieldError{Field: "/scopes/" + strconv.Itoa(i), Message: "unknown scope " + sc})
		}
	}
	return errs
}

// NewKey makes a key row and its token (shown once). cmd's `keys create`
// uses it too, so both paths make the same keys.
func NewKey(projectID, name string, scopes []string, now time.Time) (store.APIKey, string, error) {
	tok, err := apikey.Generate()
	if err != nil {
		return store.APIKey{}, "", err
	}
	k := store.APIKey{ID: tok.ID, ProjectID: projectID, Name: name, Scopes: dedupe(scopes), SecretHash: tok.Hash,
		CreatedAt: now}
	return k, tok.String(), nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func toKeyView(k store.APIKey, project string) keyView {
	return keyView{ID: k.ID, Name: k.Name, Project: project, Scopes: k.Scopes,
		CreatedAt: timeString(k.CreatedAt), RevokedAt: optTime(k.RevokedAt)}
}

// listKeys is GET /v1/keys (query project = a project name).
func (s *Server) listKeys(c echo.Context) error {
	ctx := c.Request().Context()
	projectID := ""
	if name := c.QueryParam("project"); name != "" {
		p, err := s.deps.Store.ProjectByName(ctx, name)
		if err != nil {
			return queryProblem("project", "no such project")
		}
		projectID = p.ID
	}
	keys, err := s.deps.Store.ListKeys(ctx, projectID)
	if err != nil {
		return err
	}
	out := make([]keyView, len(keys))
	for i, k := range keys {
		out[i] = toKeyView(k, s.projectName(ctx, k.ProjectID))
	}
	return c.JSON(http.StatusOK, struct {
		Data []keyView `json:"data"`
	}{out})
}

// getKey is GET /v1/keys/{id}.
func (s *Server) getKey(c echo.Context) error {
	ctx := c.Request().Context()
	k, err := s.deps.Store.KeyByID(ctx, c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("key")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toKeyView(k, s.projectName(ctx, k.ProjectID)))
}

// revokeKey is DELETE /v1/keys/{id}: refused from the next request on.
func (s *Server) revokeKey(c echo.Context) error {
	err := s.RevokeKey(c.Request().Context(), c.Param("id"))
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("key")
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// RevokeKey is the revoke operation (the API's and the console's): the
// key is refused from the next request on, on every replica (keyRevoked).
// store.ErrNotFound for no such key.
func (s *Server) RevokeKey(ctx context.Context, id string) error {
	if err := s.deps.Store.RevokeKey(ctx, id); err != nil {
		return err
	}
	s.keyRevoked(ctx, id)
	return nil
}
