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
	res, invalid, err := s.ImportSuppressionsCSV(c.Request().Context(), caller(c).ProjectID, c.Request().Body)
	switch {
	case err != nil:
		return err
	case invalid[importLimitField] != "":
		return tooLargeProblem(invalid[importLimitField])
	case len(invalid) > 0:
		return validationProblem(fieldList(invalid))
	}
	return c.JSON(http.StatusOK, suppressionImportView{Added: res.Added, Updated: res.Updated})
}

type suppressionImportView struct {
	Added   int `json:"added"`
	Updated int `json:"updated"`
}

// importLimitField is the field of invalid that says the file is past a
// limit (the API's 413).
const importLimitField = "file"

// ImportSuppressionsCSV reads a suppression CSV (the format above) from r
// and adds every row to the project's list in one transaction: the
// operation of POST /v1/suppressions/import and of the console's import.
// invalid refuses the file, nothing written: "line:N[:COLUMN]" fields for
// bad rows, "line" for the count not listed, "file" for a file past the
// limits.
func (s *Server) ImportSuppressionsCSV(ctx context.Context, projectID string, r io.Reader) (store.SuppressionImport, map[string]string, error) {
	list, errs, limit := readSuppressionCSV(io.LimitReader(r, maxImportBytes+1))
	if limit != "" {
		return store.SuppressionImport{}, map[string]string{importLimitField: limit}, nil
	}
	if len(errs) > 0 {
		return store.SuppressionImport{}, fieldMap(errs), nil
	}
	now := s.cfg.Now()
	for i := range list {
		list[i].ProjectID, list[i].CreatedAt = projectID, now
	}
	res, err := s.deps.Store.ImportSuppressions(ctx, projectID, list)
	return res, nil, err
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

// readSuppressionCSV parses and checks a whole import: the entries, or
// what is wrong with the rows, or the limit the file passes.
func readSuppressionCSV(body io.Reader) (list []store.Suppression, errs []FieldError, limit string) {
	cr := &countingReader{r: body}
	rd := &csvReading{r: csv.NewReader(cr)}
	rd.r.FieldsPerRecord = -1 // checked per row, to name the line
	if e := rd.header(); e != nil {
		return nil, []FieldError{*e}, ""
	}
	for {
		rec, err := rd.r.Read()
		if cr.n > maxImportBytes {
			return nil, nil, fmt.Sprintf("an import is at most %d bytes", maxImportBytes)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, []FieldError{csvError(err, 0)}, ""
		}
		if len(list) == maxImportRows {
			return nil, nil, fmt.Sprintf("an import is at most %d rows", maxImportRows)
		}
		line, _ := rd.r.FieldPos(0)
		if sp, ok := rd.row(rec, line); ok {
			list = append(list, sp)
		}
	}
	if rd.more > 0 {
		rd.errs = append(rd.errs, FieldError{Field: "line", Message: strconv.Itoa(rd.more) + " more bad rows not listed"})
	}
	if len(rd.errs) > 0 {
		return nil, rd.errs, ""
	}
	return list, nil, ""
}

// header reads the column names, or says what is wrong with them.
func (rd *csvReading) header() *FieldError {
	rec, err := rd.r.Read()
	if errors.Is(err, io.EOF) {
		return &FieldError{Field: "line:1", Message: "the file is empty: the first row names the columns"}
	}
	if err != nil {
		e := csvError(err, 1)
		return &e
	}
	rd.cols = map[string]int{}
	for i, name := range rec {
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF") // a spreadsheet's byte order mark
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(csvColumns, name) {
			return &FieldError{Field: "line:1",
				Message: fmt.Sprintf("unknown column %q: the columns are email, reason, note, created_at", name)}
		}
		if _, dup := rd.cols[name]; dup {
			return &FieldError{Field: "line:1", Message: "column " + name + " is named twice"}
		}
		rd.cols[name] = i
	}
	if _, ok := rd.cols["email"]; !ok {
		return &FieldError{Field: "line:1", Message: "the email column is required"}
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

// csvError names the line encoding/csv could not read.
func csvError(err error, line int) FieldError {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		line = pe.Line
		err = pe.Err
	}
	return FieldError{Field: "line:" + strconv.Itoa(line), Message: "is not RFC 4180 CSV: " + err.Error()}
}

// exportSuppressions is GET /v1/suppressions/export: the whole list (or
// one reason's) as CSV, newest first, streamed page by page.
func (s *Server) exportSuppressions(c echo.Context) error {
	reason := c.QueryParam("reason")
	if reason != "" && !validReason(reason) {
		return queryProblem("reason", "must be one of hard_bounce, complaint, soft_bounces, manual")
	}
	return s.ExportSuppressionsCSV(c.Request().Context(), caller(c).ProjectID, reason, c.Response())
}

// ExportSuppressionsCSV writes the project's suppressions (those with
// reason, or all for "") to w as a CSV download, the header row first:
// the operation of GET /v1/suppressions/export and of the console's
// export. The first
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
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8; header=present")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="suppressions.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // RFC 4180 §2
	// csv.Writer buffers: a write error (the client went away) shows at
	// Flush, and the answer, already begun, can only be abandoned.
	cw.Write(csvColumns) //nolint:errcheck // seen at Flush
	for {
		for _, sp := range list {
			cw.Write([]string{neutralise(sp.Email), neutralise(sp.Reason), neutralise(sp.Note), //nolint:errcheck // seen at Flush
				timeString(sp.CreatedAt)})
		}
		cw.Flush()
		if cw.Error() != nil {
			panic(http.ErrAbortHandler) // the client went away
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
