package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailgate/mailgate/dnscheck"
	"github.com/mailgate/mailgate/store"
)

// domainsView is the data of templates/domains.html.
type domainsView struct {
	Domains []store.Domain
	// Name is the add form as typed (kept when refused), Invalid its bad
	// fields.
	Name    string
	Invalid []fieldProblem
}

// domainView is the data of templates/domain.html.
type domainView struct {
	Domain store.Domain
	// Records are the records to publish, each with what DNS answered
	// after a verify (Checked).
	Records []dnscheck.Result
	// Checked is true after a verify; Verified when every record is right.
	Checked, Verified bool
	Notice            string
	Problem           string
}

// domains is GET /console/domains: the project's domains and the form to
// add one.
func (c *Console) domains(w http.ResponseWriter, r *http.Request, req *request) error {
	return c.renderDomains(w, r, req, http.StatusOK, domainsView{})
}

func (c *Console) renderDomains(w http.ResponseWriter, r *http.Request, req *request, code int, v domainsView) error {
	list, err := c.deps.Store.ListDomains(r.Context(), req.ProjectID)
	if err != nil {
		return err
	}
	v.Domains = list
	return c.renderCode(w, r, req, code, "domains.html", "Domains", v)
}

// createDomain is POST /console/domains: the API's register
// (Ops.CreateDomainNamed), then the new domain's records.
func (c *Console) createDomain(w http.ResponseWriter, r *http.Request, req *request) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	d, invalid, err := c.deps.Ops.CreateDomainNamed(r.Context(), req.ProjectID, name)
	switch {
	case errors.Is(err, store.ErrConflict):
		invalid = map[string]string{"/name": "the project already has the domain " + d.Name}
	case err != nil:
		return err
	}
	if len(invalid) > 0 {
		return c.renderDomains(w, r, req, http.StatusUnprocessableEntity, domainsView{Name: name, Invalid: fieldProblems(invalid)})
	}
	http.Redirect(w, r, domainPath(d.Name)+"?created=1", http.StatusSeeOther)
	return nil
}

// domainPath is the console page of the domain name.
func domainPath(name string) string { return "/console/domains/" + url.PathEscape(name) }

// loadDomain reads the {name} domain of the project, or answers 404.
func (c *Console) loadDomain(w http.ResponseWriter, r *http.Request, req *request) (store.Domain, bool, error) {
	d, err := c.deps.Store.GetDomain(r.Context(), req.ProjectID, strings.ToLower(r.PathValue("name")))
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "There is no such domain in this project.")
		return store.Domain{}, false, nil
	}
	return d, err == nil, err
}

// domain is GET /console/domains/{name}: the status, the records to
// publish (each with a copy button), the keys, verify, rotate and retire.
func (c *Console) domain(w http.ResponseWriter, r *http.Request, req *request) error {
	d, ok, err := c.loadDomain(w, r, req)
	if !ok {
		return err
	}
	v := domainView{Domain: d}
	q := r.URL.Query()
	switch {
	case q.Has("created"):
		v.Notice = "The domain is registered. Publish these records, then verify."
	case q.Has("rotated"):
		v.Notice = "New keys are made; the old ones sign until you retire them. Publish the new records."
	case q.Get("retired") != "":
		v.Notice = "The key " + q.Get("retired") + " no longer signs."
	}
	return c.renderDomain(w, r, req, http.StatusOK, v)
}

func (c *Console) renderDomain(w http.ResponseWriter, r *http.Request, req *request, code int, v domainView) error {
	if !v.Checked {
		for _, rec := range c.deps.Ops.DNSRecords(v.Domain) {
			v.Records = append(v.Records, dnscheck.Result{Record: rec})
		}
	}
	return c.renderCode(w, r, req, code, "domain.html", "Domain "+v.Domain.Name, v)
}

// verifyDomain is POST /console/domains/{name}/verify: the API's verify
// (Ops.VerifyDomain), each record's result shown.
func (c *Console) verifyDomain(w http.ResponseWriter, r *http.Request, req *request) error {
	d, ok, err := c.loadDomain(w, r, req)
	if !ok {
		return err
	}
	d, results, taken, err := c.deps.Ops.VerifyDomain(r.Context(), d)
	if err != nil {
		return err
	}
	v := domainView{Domain: d, Records: results, Checked: true, Verified: dnscheck.AllOK(results)}
	if taken {
		v.Problem = "Another project has verified " + d.Name + "; it cannot be verified in this one."
	}
	return c.renderDomain(w, r, req, http.StatusOK, v)
}

// rotateDKIM is POST /console/domains/{name}/rotate: the API's rotate
// (Ops.RotateDKIM).
func (c *Console) rotateDKIM(w http.ResponseWriter, r *http.Request, req *request) error {
	d, ok, err := c.loadDomain(w, r, req)
	if !ok {
		return err
	}
	d, err = c.deps.Ops.RotateDKIM(r.Context(), d)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.renderError(w, r, req, http.StatusNotFound, "There is no such domain in this project.")
		return nil
	case errors.Is(err, store.ErrConflict):
		c.renderError(w, r, req, http.StatusConflict, "A rotation at the same moment took the selector; try again.")
		return nil
	case err != nil:
		return err
	}
	http.Redirect(w, r, domainPath(d.Name)+"?rotated=1", http.StatusSeeOther)
	return nil
}

// retireDKIM is POST /console/domains/{name}/retire (selector): the API's
// retire (Ops.RetireDKIM).
func (c *Console) retireDKIM(w http.ResponseWriter, r *http.Request, req *request) error {
	name, selector := strings.ToLower(r.PathValue("name")), r.PostFormValue("selector")
	err := c.deps.Ops.RetireDKIM(r.Context(), req.ProjectID, name, selector)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.renderError(w, r, req, http.StatusNotFound, "The domain has no such active key.")
		return nil
	case errors.Is(err, store.ErrLastActiveKey):
		c.renderError(w, r, req, http.StatusConflict,
			"This is the domain's only active key of its algorithm: rotate first, then retire it.")
		return nil
	case err != nil:
		return err
	}
	http.Redirect(w, r, domainPath(name)+"?"+url.Values{"retired": {selector}}.Encode(), http.StatusSeeOther)
	return nil
}
