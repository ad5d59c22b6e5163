package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/store"
)

// suppressionsPageSize is the number of suppressions a page shows.
const suppressionsPageSize = 50

// importLimit bounds the import form's body: the API's import limit
// (10 MiB of CSV) and room for the multipart framing.
const importLimit = 10<<20 + 64<<10

// suppressionReasons are the reasons, for the filter and the add form.
func suppressionReasons() []string {
	return []string{store.ReasonManual, store.ReasonHardBounce, store.ReasonComplaint, store.ReasonSoftBounces}
}

// suppressionsView is the data of templates/suppressions.html.
type suppressionsView struct {
	// Search and Reason are the filter; Next the query of the next page.
	Search, Reason string
	Reasons        []string
	List           []store.Suppression
	Next           string
	// Form is the add form as typed (kept when refused), Invalid its
	// bad fields.
	Form    suppressionForm
	Invalid []fieldProblem
	// ImportInvalid lists why an import was refused.
	ImportInvalid []fieldProblem
	// Notice is the outcome of an action just taken.
	Notice string
}

type suppressionForm struct{ Email, Reason, Note string }

// fieldProblem is one bad field of a form or row of an import.
type fieldProblem struct{ Field, Message string }

// fieldProblems orders an operation's invalid fields for display: a
// "line:N…" field by its line number, the rest by name.
func fieldProblems(invalid map[string]string) []fieldProblem {
	out := make([]fieldProblem, 0, len(invalid))
	for f, m := range invalid {
		out = append(out, fieldProblem{Field: f, Message: m})
	}
	line := func(f string) int {
		num, _, _ := strings.Cut(strings.TrimPrefix(f, "line:"), ":")
		n, err := strconv.Atoi(num)
		if err != nil {
			return -1
		}
		return n
	}
	slices.SortFunc(out, func(a, b fieldProblem) int {
		if d := line(a.Field) - line(b.Field); d != 0 {
			return d
		}
		return strings.Compare(a.Field, b.Field)
	})
	return out
}

// suppressions is GET /console/suppressions: search by address, filter
// by reason, the add, remove, import and export forms.
func (c *Console) suppressions(w http.ResponseWriter, r *http.Request, req *request) error {
	v := suppressionsView{Reasons: suppressionReasons(), Form: suppressionForm{Reason: store.ReasonManual}}
	q := r.URL.Query()
	// Notices name no address: the redirect's URL stays out of browser
	// history and proxy logs, and a crafted link cannot put words in the
	// page beyond these and two numbers.
	added, errA := strconv.Atoi(q.Get("imported"))
	updated, errU := strconv.Atoi(q.Get("updated"))
	switch {
	case q.Has("added"):
		v.Notice = "The address is suppressed."
	case q.Has("removed"):
		v.Notice = "The address is no longer suppressed."
	case errA == nil && errU == nil:
		v.Notice = fmt.Sprintf("Imported: %d added, %d updated.", added, updated)
	}
	return c.renderSuppressions(w, r, req, http.StatusOK, v)
}

// renderSuppressions fills v's list from the query's filter and renders.
func (c *Console) renderSuppressions(w http.ResponseWriter, r *http.Request, req *request, code int, v suppressionsView) error {
	q := r.URL.Query()
	v.Search, v.Reason = strings.TrimSpace(q.Get("q")), q.Get("reason")
	if !slices.Contains(v.Reasons, v.Reason) {
		v.Reason = ""
	}
	list, next, err := c.deps.Store.ListSuppressions(r.Context(), req.ProjectID, store.SuppressionFilter{
		Reason: v.Reason, Search: v.Search, Page: store.Page{Limit: suppressionsPageSize, Cursor: q.Get("cursor")}})
	if errors.Is(err, store.ErrBadCursor) {
		list, next, err = nil, "", nil
	}
	if err != nil {
		return err
	}
	v.List = list
	if next != "" {
		v.Next = url.Values{"q": {v.Search}, "reason": {v.Reason}, "cursor": {next}}.Encode()
	}
	return c.renderCode(w, r, req, code, "suppressions.html", "Suppressions", v)
}

// addSuppression is POST /console/suppressions: the API's add
// (Ops.AddSuppression); a refused form is shown again with its errors.
func (c *Console) addSuppression(w http.ResponseWriter, r *http.Request, req *request) error {
	form := suppressionForm{Email: strings.TrimSpace(r.PostFormValue("email")), Reason: r.PostFormValue("reason"),
		Note: r.PostFormValue("note")}
	_, invalid, err := c.deps.Ops.AddSuppression(r.Context(), req.ProjectID, form.Email, form.Reason, form.Note)
	if err != nil {
		return err
	}
	if len(invalid) > 0 {
		v := suppressionsView{Reasons: suppressionReasons(), Form: form, Invalid: fieldProblems(invalid)}
		return c.renderSuppressions(w, r, req, http.StatusUnprocessableEntity, v)
	}
	http.Redirect(w, r, "/console/suppressions?"+"added=1", http.StatusSeeOther)
	return nil
}

// removeSuppression is POST /console/suppressions/remove (email): the
// API's delete (the store's DeleteSuppression).
func (c *Console) removeSuppression(w http.ResponseWriter, r *http.Request, req *request) error {
	email := r.PostFormValue("email")
	err := c.deps.Store.DeleteSuppression(r.Context(), req.ProjectID, email)
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "That address is not on the suppression list.")
		return nil
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/console/suppressions?"+"removed=1", http.StatusSeeOther)
	return nil
}

// importSuppressions is POST /console/suppressions/import (a multipart
// form with the file): the API's import (Ops.ImportSuppressionsCSV), all
// rows or none.
func (c *Console) importSuppressions(w http.ResponseWriter, r *http.Request, req *request) error {
	f, _, err := r.FormFile("file")
	if err != nil {
		v := suppressionsView{Reasons: suppressionReasons(), Form: suppressionForm{Reason: store.ReasonManual},
			ImportInvalid: []fieldProblem{{Field: "file", Message: "choose a CSV file to import"}}}
		return c.renderSuppressions(w, r, req, http.StatusUnprocessableEntity, v)
	}
	defer f.Close()
	res, invalid, err := c.deps.Ops.ImportSuppressionsCSV(r.Context(), req.ProjectID, f)
	if err != nil {
		return err
	}
	if len(invalid) > 0 {
		v := suppressionsView{Reasons: suppressionReasons(), Form: suppressionForm{Reason: store.ReasonManual},
			ImportInvalid: fieldProblems(invalid)}
		return c.renderSuppressions(w, r, req, http.StatusUnprocessableEntity, v)
	}
	http.Redirect(w, r, "/console/suppressions?"+url.Values{"imported": {strconv.Itoa(res.Added)},
		"updated": {strconv.Itoa(res.Updated)}}.Encode(), http.StatusSeeOther)
	return nil
}

// exportSuppressions is GET /console/suppressions/export: the API's
// export (Ops.ExportSuppressionsCSV), as a download.
func (c *Console) exportSuppressions(w http.ResponseWriter, r *http.Request, req *request) error {
	reason := r.URL.Query().Get("reason")
	if !slices.Contains(suppressionReasons(), reason) {
		reason = ""
	}
	return c.deps.Ops.ExportSuppressionsCSV(r.Context(), req.ProjectID, reason, w)
}
