package api

import (
	"encoding/csv"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/store"
)

// csvRequest posts body as text/csv to the import.
func (e *testEnv) importCSV(t testing.TB, token, body string) response {
	t.Helper()
	return e.do(t, request{Method: http.MethodPost, Path: "/v1/suppressions/import", Token: token, Body: body,
		Header: map[string]string{"Content-Type": "text/csv; charset=utf-8"}})
}

// listedSuppressions is every suppression of the sender's project as
// "email|reason|note", sorted.
func (e *testEnv) listedSuppressions(t testing.TB) []string {
	t.Helper()
	var page struct {
		Data []suppressionView `json:"data"`
	}
	r := e.get(t, "/v1/suppressions?limit=100", e.sender)
	wantCode(t, r, http.StatusOK)
	r.decode(t, &page)
	out := []string{}
	for _, sp := range page.Data {
		out = append(out, sp.Email+"|"+sp.Reason+"|"+sp.Note)
	}
	sort.Strings(out)
	return out
}

func TestSuppressionCSVRoundTrip(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		entries := []map[string]any{
			{"email": "ann@example.org", "reason": "hard_bounce", "note": "plain"},
			{"email": "=cmd@example.org", "note": "=HYPERLINK(\"http://evil.example\",\"x\")"},
			{"email": "-dash@example.org", "reason": "complaint", "note": "'already quoted"},
			{"email": "plus@example.org", "note": "+1, \"quoted\"\nsecond line"},
			{"email": "at@example.org", "reason": "soft_bounces", "note": "@SUM(A1)"},
		}
		for _, body := range entries {
			wantCode(t, e.post(t, "/v1/suppressions", e.sender, body), http.StatusCreated)
		}
		before := e.listedSuppressions(t)

		r := e.get(t, "/v1/suppressions/export", e.sender)
		wantCode(t, r, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("Content-Type %q", ct)
		}
		if !strings.HasPrefix(string(r.Body), "email,reason,note,created_at\r\n") {
			t.Errorf("export does not start with the header row and CRLF: %q", truncate(r.Body, 100))
		}
		recs, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
		if err != nil {
			t.Fatalf("export is not CSV: %v", err)
		}
		cells := map[string]bool{}
		for _, rec := range recs[1:] {
			for _, c := range rec[:3] {
				cells[c] = true
				if c != "" && strings.ContainsRune("=+-@", rune(c[0])) {
					t.Errorf("cell %q starts a formula", c)
				}
			}
		}
		for _, want := range []string{"'=cmd@example.org", "'-dash@example.org", "''already quoted",
			"'+1, \"quoted\"\nsecond line", "'@SUM(A1)", "'=HYPERLINK(\"http://evil.example\",\"x\")"} {
			if !cells[want] {
				t.Errorf("export lacks the neutralised cell %q", want)
			}
		}

		for _, email := range []string{"ann@example.org", "=cmd@example.org", "-dash@example.org", "plus@example.org", "at@example.org"} {
			wantCode(t, e.do(t, request{Method: http.MethodDelete, Path: "/v1/suppressions/" + email, Token: e.sender}),
				http.StatusNoContent)
		}
		if got := e.listedSuppressions(t); len(got) != 0 {
			t.Fatalf("left after deleting: %v", got)
		}
		r = e.importCSV(t, e.sender, string(r.Body))
		wantCode(t, r, http.StatusOK)
		var res suppressionImportView
		r.decode(t, &res)
		if res != (suppressionImportView{Added: 5}) {
			t.Errorf("import answered %+v, want 5 added", res)
		}
		if diff := cmp.Diff(before, e.listedSuppressions(t)); diff != "" {
			t.Errorf("after the round trip (-before +after):\n%s", diff)
		}
	})
}

func TestSuppressionImportRules(t *testing.T) {
	e := newEnv(t, "sqlite")
	wantCode(t, e.post(t, "/v1/suppressions", e.sender, map[string]any{"email": "old@example.org", "note": "first"}),
		http.StatusCreated)

	t.Run("bad rows refuse the file, naming each", func(t *testing.T) {
		body := "email,reason,note\r\nnew@example.org,manual,ok\r\nnot an address,manual,x\r\nb@example.org,sometimes,\r\nc@example.org,manual\r\n"
		p := wantProblem(t, e.importCSV(t, e.sender, body), http.StatusUnprocessableEntity, "validation",
			"line:3:email", "line:4:reason", "line:5")
		if len(p.Errors) != 3 {
			t.Errorf("errors %v, want exactly the three bad rows", p.fields())
		}
		if diff := cmp.Diff([]string{"old@example.org|manual|first"}, e.listedSuppressions(t)); diff != "" {
			t.Errorf("a refused import wrote (-want +got):\n%s", diff)
		}
	})
	t.Run("columns in any order, BOM, duplicates, update", func(t *testing.T) {
		body := "\uFEFFnote,Email\nfrom import,OLD@example.org\nx,new@example.org\nlast wins,New@Example.org\n"
		r := e.importCSV(t, e.sender, body)
		wantCode(t, r, http.StatusOK)
		var res suppressionImportView
		r.decode(t, &res)
		if res != (suppressionImportView{Added: 1, Updated: 1}) {
			t.Errorf("import answered %+v, want 1 added, 1 updated", res)
		}
		want := []string{"new@example.org|manual|last wins", "old@example.org|manual|from import"}
		if diff := cmp.Diff(want, e.listedSuppressions(t)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	for name, body := range map[string]string{
		"unknown column": "email,reasn\r\na@example.org,manual\r\n",
		"no email":       "reason,note\r\nmanual,x\r\n",
		"twice":          "email,email\r\na@example.org,b@example.org\r\n",
		"bad quoting":    "email\r\n\"a@example.org\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := wantProblem(t, e.importCSV(t, e.sender, body), http.StatusUnprocessableEntity, "validation")
			if len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Field, "line:") {
				t.Errorf("errors %+v, want one naming a line", p.Errors)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		wantProblem(t, e.importCSV(t, e.sender, ""), http.StatusBadRequest, "malformed")
	})
	t.Run("too many rows", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("email\n")
		for range maxImportRows + 1 {
			b.WriteString("a@example.org\n")
		}
		wantProblem(t, e.importCSV(t, e.sender, b.String()), http.StatusRequestEntityTooLarge, "too-large")
	})
	t.Run("too many bytes", func(t *testing.T) {
		body := "email,note\n" + strings.Repeat("a@example.org,"+strings.Repeat("n", 900)+"\n", maxImportBytes/900)
		wantProblem(t, e.importCSV(t, e.sender, body), http.StatusRequestEntityTooLarge, "too-large")
	})
	t.Run("JSON is not taken", func(t *testing.T) {
		r := e.do(t, request{Method: http.MethodPost, Path: "/v1/suppressions/import", Token: e.sender,
			Body: map[string]any{"email": "a@example.org"}})
		wantProblem(t, r, http.StatusUnsupportedMediaType, "unsupported-media-type")
	})
	t.Run("scope", func(t *testing.T) {
		reader := e.key(store.DefaultProjectID, "messages:read")
		wantCode(t, e.importCSV(t, reader, "email\na@example.org\n"), http.StatusForbidden)
		wantCode(t, e.get(t, "/v1/suppressions/export", reader), http.StatusForbidden)
	})
	t.Run("export of one reason", func(t *testing.T) {
		wantCode(t, e.post(t, "/v1/suppressions", e.sender, map[string]any{"email": "hb@example.org", "reason": "hard_bounce"}),
			http.StatusCreated)
		r := e.get(t, "/v1/suppressions/export?reason=hard_bounce", e.sender)
		wantCode(t, r, http.StatusOK)
		if got, want := string(r.Body), "email,reason,note,created_at\r\nhb@example.org,hard_bounce,,"; !strings.HasPrefix(got, want) {
			t.Errorf("export %q, want it to start %q", got, want)
		}
		if n := strings.Count(string(r.Body), "\r\n"); n != 2 {
			t.Errorf("export has %d lines, want the header and one row", n)
		}
		wantProblem(t, e.get(t, "/v1/suppressions/export?reason=sometimes", e.sender), http.StatusUnprocessableEntity,
			"validation", "query:reason")
	})
}
