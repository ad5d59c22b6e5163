package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// templateFS holds the layout (layout.html, with the blocks every page
// shares) and one template per page, each defining "content".
//
//go:embed templates
var templateFS embed.FS

// pageTemplate is a page's template joined with the layout.
type pageTemplate = template.Template

// templateFuncs are the helpers templates may call.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"join": strings.Join,
	}
}

// parseTemplates joins each page template with the layout.
func parseTemplates() (map[string]*pageTemplate, error) {
	base, err := template.New("layout.html").Funcs(templateFuncs()).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		return nil, err
	}
	out := map[string]*pageTemplate{}
	for _, e := range entries {
		if e.Name() == "layout.html" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if out[e.Name()], err = t.ParseFS(templateFS, "templates/"+e.Name()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// view is what the layout sees; Data is the page's own.
type view struct {
	Title string
	// Req is the session; nil on the sign-in and error pages of a
	// signed-out visitor.
	Req      *request
	Nav      []navLink
	Projects []store.Project
	Data     any
}

// render writes a page with status 200.
func (c *Console) render(w http.ResponseWriter, r *http.Request, req *request, name, title string, data any) error {
	return c.renderCode(w, r, req, http.StatusOK, name, title, data)
}

// renderCode writes a page with status code: the page's template inside
// the layout, with the menu req's key may see and, for an admin key, the
// projects it may switch to.
func (c *Console) renderCode(w http.ResponseWriter, r *http.Request, req *request, code int, name, title string, data any) error {
	v := view{Title: title, Req: req, Data: data}
	if req != nil {
		v.Nav = navFor(req, r.URL.Path)
		if req.Can(apikey.ScopeAdmin) {
			ps, err := c.deps.Store.ListProjects(r.Context())
			if err != nil {
				return err
			}
			v.Projects = ps
		}
	}
	return c.execute(w, code, name, "layout.html", v)
}

// renderFragment writes one block of a page's template (an htmx swap).
func (c *Console) renderFragment(w http.ResponseWriter, name, block string, data any) error {
	return c.execute(w, http.StatusOK, name, block, data)
}

func (c *Console) execute(w http.ResponseWriter, code int, name, block string, data any) error {
	t, ok := c.templates[name]
	if !ok {
		return fmt.Errorf("no template %s", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, data); err != nil {
		return fmt.Errorf("template %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
	return nil
}

// renderStatus is renderCode for the pages that cannot fail over (sign-in,
// errors): a template failure is logged and answered with plain text.
func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, req *request, code int, name, title string, data any) {
	if err := c.renderCode(w, r, req, code, name, title, data); err != nil {
		c.deps.Log.Error("console render", "template", name, "err", err)
		http.Error(w, http.StatusText(code), code)
	}
}

// renderError shows a message with status code.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, req *request, code int, msg string) {
	c.renderStatus(w, r, req, code, "error.html", http.StatusText(code), msg)
}
