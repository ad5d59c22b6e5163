package api

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/store"
)

// The suppression list as CSV (RFC 4180): GET /v1/suppressions/export
// writes it, POST /v1/suppressions/import reads it back, and the console's
// suppression page calls the same two operations.
//
// The first row names the columns: email (required), reason, note and
// created_at, in any order; created_at is what the export writes and the
// import ignores (an imported entry is created at the import, or keeps an
// existing entry's time). Every row is checked as POST /v1/suppressions
// checks one (checkSuppression); one bad row refuses the whole file with a
// 422 naming each bad row ("line:N:COLUMN", N the row's line in the file),
// and nothing is written. An address given twice counts once, with its
// last row.
//
// Spreadsheet formula injection (OWASP "CSV Injection"): a cell that
// starts with = + - @, a tab or a carriage return is taken for a formula
// by spreadsheets. The export writes such a cell with an apostrophe in
// front, which spreadsheets show as text; it also doubles a leading
// apostrophe, so that the import, which removes one leading apostrophe
// from every cell, gives back exactly what was exported. A hand-written
// file whose value truly starts with an apostrophe writes two.

// Import limits: beyond either the import is refused whole (413).
const (
	// maxImportBytes bounds an import's body.
	maxImportBytes = 10 << 20
	// maxImportRows bounds an import's rows (besides the header).
	maxImportRows = 50_000
	// maxImportErrors is how many bad rows a 422 lists; it says how many
	// more there were.
	maxImportErrors = 100
)

// exportPage is how many suppressions the export reads per query, so no
// query holds a connection while a slow client reads.
const exportPage = 1000

// csvColumns are the columns the export writes, in order, and the import
// knows.
var csvColumns = []string{"email", "reason", "note", "created_at"}

// importSuppressions is POST /v1/suppressions/import (text/csv body).
func (s *Server) importSuppressions(c echo.Context) error {
	res, err := s.ImportSuppressionsCSV(c.Request().Context(), caller(c).ProjectID, c.Request().Body)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, suppressionImportView{Added: res.Added, Updated: res.Updated})
}

type suppressionImportView struct {
	Added   int `json:"added"`
	Updated int `json:"updated"`
}

// ImportSuppressionsCSV reads a suppression CSV (the format above) from r
// and adds every row to the project's list in one transaction. A bad
// file is a *Problem: 422 naming the bad rows, 413 past the limits.
func (s *Server) ImportSuppressionsCSV(ctx context.Context, projectID string, r io.Reader) (store.SuppressionImport, error) {
	list, err := readSuppressionCSV(io.LimitReader(r, maxImportBytes+1))
	if err != nil {
		return store.SuppressionImport{}, err
	}
	now := s.cfg.Now()
	for i := range list {
		list[i].ProjectID, list[i].CreatedAt = projectID, now
	}
	return s.deps.Store.ImportSuppressions(ctx, projectID, list)
}

// csvReading is the state of reading one import.
type csvReading struct {
	r    *csv.Reader
	cols map[string]int // column name → index
	errs []FieldError
	more int // bad rows beyond maxImportErrors
}

// countingReader counts the bytes read, to tell a cut-off body.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readSuppressionCSV parses and checks a whole import, or returns the
// problem that refuses it.
func readSuppressionCSV(body io.Reader) ([]store.Suppression, error) {
	cr := &countingReader{r: body}
	rd := &csvReading{r: csv.NewReader(cr)}
	rd.r.FieldsPerRecord = -1 // checked per row, to name the line
	if err := rd.header(); err != nil {
		return nil, err
	}
	var out []store.Suppression
	for {
		rec, err := rd.r.Read()
		if cr.n > maxImportBytes {
			return nil, tooLargeProblem(fmt.Sprintf("an import is at most %d bytes", maxImportBytes))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvProblem(err, 0)
		}
		line, _ := rd.r.FieldPos(0)
		if len(out) == maxImportRows {
			return nil, tooLargeProblem(fmt.Sprintf("an import is at most %d rows", maxImportRows))
		}
		if sp, ok := rd.row(rec, line); ok {
			out = append(out, sp)
		}
	}
	if len(rd.errs) > 0 {
		if rd.more > 0 {
			rd.errs = append(rd.errs, FieldError{Field: "line", Message: strconv.Itoa(rd.more) + " more bad rows not listed"})
		}
		return nil, validationProblem(rd.errs)
	}
	return out, nil
}

// header reads the column names.
func (rd *csvReading) header() error {
	rec, err := rd.r.Read()
	if errors.Is(err, io.EOF) {
		return validationProblem([]FieldError{{Field: "line:1", Message: "the file is empty: the first row names the columns"}})
	}
	if err != nil {
		return csvProblem(err, 1)
	}
	rd.cols = map[string]int{}
	for i, name := range rec {
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF") // a spreadsheet's byte order mark
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(csvColumns, name) {
			return validationProblem([]FieldError{{Field: "line:1",
				Message: fmt.Sprintf("unknown column %q: the columns are email, reason, note, created_at", name)}})
		}
		if _, dup := rd.cols[name]; dup {
			return validationProblem([]FieldError{{Field: "line:1", Message: "column " + name + " is named twice"}})
		}
		rd.cols[name] = i
	}
	if _, ok := rd.cols["email"]; !ok {
		return validationProblem([]FieldError{{Field: "line:1", Message: "the email column is required"}})
	}
	return nil
}

// row checks one record as POST /v1/suppressions checks a body.
func (rd *csvReading) row(rec []string, line int) (store.Suppression, bool) {
	if len(rec) != len(rd.cols) {
		rd.bad(FieldError{Field: "line:" + strconv.Itoa(line),
			Message: fmt.Sprintf("has %d fields, the header names %d", len(rec), len(rd.cols))})
		return store.Suppression{}, false
	}
	cell := func(name string) string {
		if i, ok := rd.cols[name]; ok {
			return unneutralise(rec[i])
		}
		return ""
	}
	sp, errs := checkSuppression(suppressionRequest{Email: strings.TrimSpace(cell("email")),
		Reason: strings.TrimSpace(cell("reason")), Note: cell("note")})
	for _, e := range errs {
		rd.bad(FieldError{Field: "line:" + strconv.Itoa(line) + ":" + strings.TrimPrefix(e.Field, "/"), Message: e.Message})
	}
	return sp, len(errs) == 0
}

// bad records one bad field, up to maxImportErrors.
func (rd *csvReading) bad(e FieldError) {
	if len(rd.errs) < maxImportErrors {
		rd.errs = append(rd.errs, e)
		return
	}
	rd.more++
}

// csvProblem is the 422 for a file encoding/csv cannot read.
func csvProblem(err error, line int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		line = pe.Line
		err = pe.Err
	}
	return validationProblem([]FieldError{{Field: "line:" + strconv.Itoa(line), Message: "is not RFC 4180 CSV: " + err.Error()}})
}

// exportSuppressions is GET /v1/suppressions/export: the whole list (or
// one reason's) as CSV, newest first, streamed page by page.
func (s *Server) exportSuppressions(c echo.Context) error {
	reason := c.QueryParam("reason")
	if reason != "" && !validReason(reason) {
		return queryProblem("reason", "must be one of hard_bounce, complaint, soft_bounces, manual")
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8; header=present")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="suppressions.csv"`)
	return s.ExportSuppressionsCSV(c.Request().Context(), caller(c).ProjectID, reason, c.Response())
}

// ExportSuppressionsCSV writes the project's suppressions (those with
// reason, or all for "") to w as CSV, the header row first. The first
// page is read before anything is written, so an unavailable database is
// an error the caller can still answer; a failure after that aborts the
// response (http.ErrAbortHandler), so the client sees a cut transfer,
// never a CSV that looks complete.
func (s *Server) ExportSuppressionsCSV(ctx context.Context, projectID, reason string, w http.ResponseWriter) error {
	f := store.SuppressionFilter{Reason: reason, Page: store.Page{Limit: exportPage}}
	list, next, err := s.deps.Store.ListSuppressions(ctx, projectID, f)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180 §2
	if err := cw.Write(csvColumns); err != nil {
		return err
	}
	for {
		for _, sp := range list {
			if err := cw.Write([]string{neutralise(sp.Email), neutralise(sp.Reason), neutralise(sp.Note),
				timeString(sp.CreatedAt)}); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err // the client went away
		}
		http.NewResponseController(w).Flush() //nolint:errcheck // a writer that cannot flush buffers instead
		if next == "" {
			return nil
		}
		f.Cursor = next
		if list, next, err = s.deps.Store.ListSuppressions(ctx, projectID, f); err != nil {
			s.deps.Log.ErrorContext(ctx, "suppression export cut short", "err", err)
			panic(http.ErrAbortHandler) // net/http's way to abort a response already begun
		}
	}
}

// neutralise writes a cell a spreadsheet would take for a formula with an
// apostrophe in front, and doubles a leading apostrophe (see above).
func neutralise(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r'", rune(v[0])) {
		return "'" + v
	}
	return v
}

// unneutralise removes the one leading apostrophe neutralise adds.
func unneutralise(v string) string { return strings.TrimPrefix(v, "'") }
