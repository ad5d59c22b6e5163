package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/store"
)

type suppressionRequest struct {
	Email  string `json:"email"`
	Reason string `json:"reason"`
	Note   string `json:"note"`
}

// validReason reports whether r is a suppression reason.
func validReason(r string) bool {
	switch r {
	case store.ReasonHardBounce, store.ReasonComplaint, store.ReasonSoftBounces, store.ReasonManual:
		return true
	}
	return false
}

// maxSuppressionNote is the longest note, in characters (openapi.yaml
// SuppressionRequest).
const maxSuppressionNote = 1000

// checkSuppression validates one suppression as POST /v1/suppressions
// takes it (and as each line of an import is taken): a bare address, a
// known reason (manual when empty), a note of at most maxSuppressionNote
// characters of valid UTF-8 without NUL. It returns the entry to store,
// without project and time, or the bad fields ("/email", "/reason",
// "/note").
func checkSuppression(req suppressionRequest) (store.Suppression, []FieldError) {
	var errs []FieldError
	addr, err := ParseAddress(req.Email)
	if err != nil || addr.Name != "" {
		errs = append(errs, FieldError{Field: "/email", Message: "must be a bare email address"})
	}
	if req.Reason == "" {
		req.Reason = store.ReasonManual
	}
	if !validReason(req.Reason) {
		errs = append(errs, FieldError{Field: "/reason",
			Message: "must be one of hard_bounce, complaint, soft_bounces, manual"})
	}
	if !utf8.ValidString(req.Note) || strings.ContainsRune(req.Note, 0) ||
		utf8.RuneCountInString(req.Note) > maxSuppressionNote {
		errs = append(errs, FieldError{Field: "/note",
			Message: "must be at most 1000 characters of UTF-8 text without NUL"})
	}
	if len(errs) > 0 {
		return store.Suppression{}, errs
	}
	return store.Suppression{Email: addr.Email, Reason: req.Reason, Note: req.Note}, nil
}

// createSuppression is POST /v1/suppressions (reason defaults to manual).
func (s *Server) createSuppression(c echo.Context) error {
	var req suppressionRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	sp, invalid, err := s.AddSuppression(c.Request().Context(), caller(c).ProjectID, req.Email, req.Reason, req.Note)
	if err != nil {
		return err
	}
	if len(invalid) > 0 {
		return validationProblem(fieldList(invalid))
	}
	return c.JSON(http.StatusCreated, toSuppressionView(sp))
}

// AddSuppression is POST /v1/suppressions's operation (the console's too):
// the entry checked (checkSuppression) and stored. invalid names each bad
// field ("/email", "/reason", "/note") with its message; nothing is
// stored then.
func (s *Server) AddSuppression(ctx context.Context, projectID, email, reason, note string) (store.Suppression, map[string]string, error) {
	sp, errs := checkSuppression(suppressionRequest{Email: email, Reason: reason, Note: note})
	if len(errs) > 0 {
		return store.Suppression{}, fieldMap(errs), nil
	}
	sp.ProjectID, sp.CreatedAt = projectID, s.cfg.Now()
	sp, err := s.deps.Store.UpsertSuppression(ctx, sp)
	return sp, nil, err
}

// fieldMap is errs keyed by field, the form the console's operations
// return.
func fieldMap(errs []FieldError) map[string]string {
	out := make(map[string]string, len(errs))
	for _, e := range errs {
		out[e.Field] = e.Message
	}
	return out
}

// fieldList is fieldMap's inverse, ordered by field (a "line:N…" field
// by its line number).
func fieldList(m map[string]string) []FieldError {
	out := make([]FieldError, 0, len(m))
	for f, msg := range m {
		out = append(out, FieldError{Field: f, Message: msg})
	}
	slices.SortFunc(out, func(a, b FieldError) int { return compareFields(a.Field, b.Field) })
	return out
}

// compareFields orders field names as a person reads them: "line:N…"
// fields by N as a number, the rest as text.
func compareFields(a, b string) int {
	la, oka := fieldLine(a)
	lb, okb := fieldLine(b)
	if oka && okb && la != lb {
		return cmp.Compare(la, lb)
	}
	return strings.Compare(a, b)
}

// fieldLine is N of a "line:N" or "line:N:COLUMN" field.
func fieldLine(f string) (int, bool) {
	rest, ok := strings.CutPrefix(f, "line:")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ":")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// listSuppressions is GET /v1/suppressions, newest first.
func (s *Server) listSuppressions(c echo.Context) error {
	q := c.QueryParams()
	page, err := pageParams(q)
	if err != nil {
		return err
	}
	list, next, err := s.deps.Store.ListSuppressions(c.Request().Context(), caller(c).ProjectID,
		store.SuppressionFilter{Reason: q.Get("reason"), Page: page})
	if err != nil {
		return listErr(err)
	}
	out := listView[suppressionView]{Data: make([]suppressionView, len(list)), NextCursor: cursorPtr(next)}
	for i, sp := range list {
		out.Data[i] = toSuppressionView(sp)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getSuppression(c echo.Context) error {
	sp, err := s.deps.Store.GetSuppression(c.Request().Context(), caller(c).ProjectID, pathEmail(c))
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("suppression")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toSuppressionView(sp))
}

func (s *Server) deleteSuppression(c echo.Context) error {
	err := s.deps.Store.DeleteSuppression(c.Request().Context(), caller(c).ProjectID, pathEmail(c))
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("suppression")
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// pathEmail is the {email} path parameter, percent-decoded.
func pathEmail(c echo.Context) string {
	v := c.Param("email")
	if d, err := url.PathUnescape(v); err == nil {
		return d
	}
	return v
}

// decodeStrict decodes a small JSON body; unknown fields are refused (the
// contract validator refuses them first, this is the backstop).
func decodeStrict(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformedProblem("the body is not the JSON object this route takes: " + err.Error())
	}
	return nil
}
