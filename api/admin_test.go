package api

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// tokenRE is the shape of an API key token (docs/architecture.md "API keys and scopes").
var tokenRE = regexp.MustCompile(`^mg_[A-Za-z0-9]+_[A-Za-z0-9]+$`)

func TestAdminProjectsAndKeys(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		r := e.post(t, "/v1/projects", e.admin, map[string]any{"name": "acme"})
		wantCode(t, r, http.StatusCreated)
		var p wireProject
		r.decode(t, &p)
		if p.Name != "acme" || p.ID == "" {
			t.Errorf("project %+v", p)
		}
		wantProblem(t, e.post(t, "/v1/projects", e.admin, map[string]any{"name": "acme"}), http.StatusConflict, "conflict")
		wantProblem(t, e.post(t, "/v1/projects", e.admin, map[string]any{"name": "Bad Name"}), 422, "validation", "/name")

		var projects struct{ Data []wireProject }
		e.get(t, "/v1/projects", e.admin).decode(t, &projects)
		names := map[string]bool{}
		for _, p := range projects.Data {
			names[p.Name] = true
		}
		if !names["acme"] || !names[store.DefaultProjectName] {
			t.Errorf("projects %+v lack acme or default", projects.Data)
		}

		r = e.post(t, "/v1/keys", e.admin, map[string]any{"name": "acme app", "project": "acme",
			"scopes": []string{apikey.ScopeSend, apikey.ScopeRead}})
		wantCode(t, r, http.StatusCreated)
		var k wireKey
		r.decode(t, &k)
		if !tokenRE.MatchString(k.Token) || k.Project != "acme" || k.RevokedAt != nil {
			t.Fatalf("created key %+v", k)
		}
		theirs := e.send(t, k.Token, message())
		ours := e.send(t, e.sender, message())
		if got := e.listIDsAs(t, k.Token); len(got) != 1 || got[0] != theirs.ID {
			t.Errorf("acme key sees %v, want only %s", got, theirs.ID)
		}
		if got := e.listIDsAs(t, e.sender); len(got) != 1 || got[0] != ours.ID {
			t.Errorf("default key sees %v, want only %s", got, ours.ID)
		}

		r = e.get(t, "/v1/keys", e.admin)
		wantCode(t, r, http.StatusOK)
		for _, secret := range []string{"token", "hash", k.Token, strings.TrimPrefix(k.Token, "mg_"+k.ID+"_")} {
			if strings.Contains(string(r.Body), secret) {
				t.Errorf("key list contains %q: %s", secret, r.Body)
			}
		}
		var keys struct{ Data []wireKey }
		r.decode(t, &keys)
		if len(keys.Data) != 3 {
			t.Errorf("%d keys listed, want 3", len(keys.Data))
		}
		r = e.get(t, "/v1/keys/"+k.ID, e.admin)
		wantCode(t, r, http.StatusOK)
		if strings.Contains(string(r.Body), "token") {
			t.Errorf("key read shows a token: %s", r.Body)
		}
	})
}

func (e *testEnv) listIDsAs(t *testing.T, token string) []string {
	t.Helper()
	var list wireList[wireMessage]
	r := e.get(t, "/v1/messages", token)
	wantCode(t, r, http.StatusOK)
	r.decode(t, &list)
	return ids(list.Data)
}

func TestAdminRefusals(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := []struct {
		name, token, method, path string
		body                      any
		code                      int
		slug, field               string
	}{
		{"non-admin creates a project", e.sender, http.MethodPost, "/v1/projects", map[string]any{"name": "x"}, 403, "forbidden", ""},
		{"non-admin creates a key", e.sender, http.MethodPost, "/v1/keys",
			map[string]any{"name": "x", "scopes": []string{"admin"}}, 403, "forbidden", ""},
		{"non-admin lists keys", e.sender, http.MethodGet, "/v1/keys", nil, 403, "forbidden", ""},
		{"non-admin revokes a key", e.sender, http.MethodDelete, "/v1/keys/abc", nil, 403, "forbidden", ""},
		{"unknown scope", e.admin, http.MethodPost, "/v1/keys",
			map[string]any{"name": "x", "scopes": []string{"everything"}}, 422, "validation", "/scopes/0"},
		{"no scopes", e.admin, http.MethodPost, "/v1/keys", map[string]any{"name": "x", "scopes": []string{}}, 422, "validation", "/scopes"},
		{"unknown project", e.admin, http.MethodPost, "/v1/keys",
			map[string]any{"name": "x", "project": "nope", "scopes": []string{"admin"}}, 422, "validation", "/project"},
		{"revoke unknown key", e.admin, http.MethodDelete, "/v1/keys/unknownKey123", nil, 404, "not-found", ""},
		{"get unknown key", e.admin, http.MethodGet, "/v1/keys/unknownKey123", nil, 404, "not-found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, request{Method: tc.method, Path: tc.path, Token: tc.token, Body: tc.body})
			if tc.field == "" {
				wantProblem(t, r, tc.code, tc.slug)
				return
			}
			wantProblem(t, r, tc.code, tc.slug, tc.field)
		})
	}
}
