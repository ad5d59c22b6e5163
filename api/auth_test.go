package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

func TestAuthRefusesBadCredentials(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		id, _, err := apikey.Parse(e.sender)
		if err != nil {
			t.Fatal(err)
		}
		other, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name, header string
		}{
			{"no header", ""},
			{"not bearer", "Basic " + e.sender},
			{"empty bearer", "Bearer "},
			{"malformed token", "Bearer mg_nounderscore"},
			{"bad prefix", "Bearer xx_" + strings.TrimPrefix(e.sender, "mg_")},
			{"unknown id", "Bearer " + other.String()},
			{"wrong secret", "Bearer mg_" + id + "_" + other.Secret},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.do(t, request{Method: http.MethodGet, Path: "/v1/messages",
					Header: map[string]string{"Authorization": tc.header}})
				wantProblem(t, r, http.StatusUnauthorized, "unauthorized")
				if got := r.Header.Get("WWW-Authenticate"); got != "Bearer" {
					t.Errorf("WWW-Authenticate %q, want %q", got, "Bearer")
				}
			})
		}
	})
}

func TestAuthRevokedKeyRefusedAtOnce(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		viaAPI := e.key(store.DefaultProjectID, apikey.ScopeRead)
		viaStore := e.key(store.DefaultProjectID, apikey.ScopeRead)
		for _, tok := range []string{viaAPI, viaStore} {
			wantCode(t, e.get(t, "/v1/messages", tok), http.StatusOK)
		}
		id, _, _ := apikey.Parse(viaAPI)
		r := e.do(t, request{Method: http.MethodDelete, Path: "/v1/keys/" + id, Token: e.admin})
		wantCode(t, r, http.StatusNoContent)
		wantProblem(t, e.get(t, "/v1/messages", viaAPI), http.StatusUnauthorized, "unauthorized")

		id, _, _ = apikey.Parse(viaStore)
		if err := e.store.RevokeKey(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, e.get(t, "/v1/messages", viaStore), http.StatusUnauthorized, "unauthorized")
	})
}

func TestAuthScopes(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	readOnly := e.key(store.DefaultProjectID, apikey.ScopeRead)
	sendOnly := e.key(store.DefaultProjectID, apikey.ScopeSend)
	cases := []struct {
		name, token, method, path, scope string
		body                             any
	}{
		{"send without messages:send", readOnly, http.MethodPost, "/v1/messages", apikey.ScopeSend, message()},
		{"batch without messages:send", readOnly, http.MethodPost, "/v1/messages/batch", apikey.ScopeSend,
			map[string]any{"messages": []any{message()}}},
		{"list without messages:read", sendOnly, http.MethodGet, "/v1/messages", apikey.ScopeRead, nil},
		{"events without messages:read", sendOnly, http.MethodGet, "/v1/events", apikey.ScopeRead, nil},
		{"suppressions without scope", sendOnly, http.MethodGet, "/v1/suppressions", apikey.ScopeSuppressions, nil},
		{"projects without admin", e.sender, http.MethodGet, "/v1/projects", apikey.ScopeAdmin, nil},
		{"keys without admin", e.sender, http.MethodPost, "/v1/keys", apikey.ScopeAdmin,
			map[string]any{"name": "x", "scopes": []string{"admin"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, request{Method: tc.method, Path: tc.path, Token: tc.token, Body: tc.body})
			p := wantProblem(t, r, http.StatusForbidden, "forbidden")
			if !strings.Contains(p.Detail, tc.scope) {
				t.Errorf("detail %q does not name %q", p.Detail, tc.scope)
			}
		})
	}
	if n := e.taskCount(t); n != 0 {
		t.Errorf("%d tasks queued by refused requests", n)
	}
}

// TestAuthScopeBeforeBody checks that a key without a route's scope gets
// 403 whatever its body: the contract's rules for a body are not told to
// a key that may not use the route.
func TestAuthScopeBeforeBody(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	readOnly := e.key(store.DefaultProjectID, apikey.ScopeRead)
	cases := []struct {
		name, token, path, scope string
		body                     any
	}{
		{"project without admin", e.sender, "/v1/projects", apikey.ScopeAdmin, map[string]any{}},
		{"key without admin", e.sender, "/v1/keys", apikey.ScopeAdmin, map[string]any{"scopes": "all"}},
		{"key, not JSON, without admin", e.sender, "/v1/keys", apikey.ScopeAdmin, "{"},
		{"send without messages:send", readOnly, "/v1/messages", apikey.ScopeSend, map[string]any{}},
		{"suppression without scope", readOnly, "/v1/suppressions", apikey.ScopeSuppressions, map[string]any{"x": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, tc.path, tc.token, tc.body)
			p := wantProblem(t, r, http.StatusForbidden, "forbidden")
			if !strings.Contains(p.Detail, tc.scope) {
				t.Errorf("detail %q does not name %q", p.Detail, tc.scope)
			}
		})
	}
}

func TestAuthAdminCanDoEverything(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	a := e.send(t, e.admin, message())
	e.getMessage(t, e.admin, a.ID)
	wantCode(t, e.get(t, "/v1/messages", e.admin), http.StatusOK)
	wantCode(t, e.get(t, "/v1/events", e.admin), http.StatusOK)
	wantCode(t, e.post(t, "/v1/suppressions", e.admin, map[string]any{"email": "x@example.org"}), http.StatusCreated)
	wantCode(t, e.get(t, "/v1/suppressions", e.admin), http.StatusOK)
	wantCode(t, e.post(t, "/v1/messages/batch", e.admin, map[string]any{"messages": []any{message()}}), http.StatusOK)
	wantCode(t, e.post(t, "/v1/projects", e.admin, map[string]any{"name": "p2"}), http.StatusCreated)
	wantCode(t, e.get(t, "/v1/keys", e.admin), http.StatusOK)
}
