package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/console"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// sendMessage posts a message through the API with token: its id.
func (e *env) sendMessage(token, body string) string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("send: %d %v", resp.StatusCode, err)
	}
	return out.ID
}

func TestSignInAndOut(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(allScopes()...)
	b := e.browser()
	page := b.get("/console")
	if page.code != http.StatusOK || !strings.Contains(page.body, `type="password"`) ||
		!strings.Contains(page.body, `autocomplete="off"`) {
		t.Fatalf("sign-in page: %d, want a password field without autocomplete\n%s", page.code, page.body)
	}
	if b.signedIn() {
		t.Fatal("signed in before signing in")
	}
	b.signIn(token)
	if !b.signedIn() {
		t.Fatal("not signed in after signing in")
	}
	// Signing in again ends the session the browser sends along (the
	// form is shown when the Strict cookie was not sent, e.g. on arriving
	// from another site's link; the same-site POST carries it).
	first := b.http.Jar.Cookies(mustURL(t, e.url+"/console"))
	again := e.browser()
	form := again.csrf("/console")
	again.http.Jar.SetCookies(mustURL(t, e.url+"/console"), first)
	if r := again.post("/console/sign-in", url.Values{"csrf_token": {form}, "key": {token}}); r.code != http.StatusSeeOther {
		t.Fatalf("signing in again: %d\n%s", r.code, r.body)
	}
	if !again.signedIn() {
		t.Fatal("not signed in after signing in again")
	}
	if b.signedIn() {
		t.Fatal("the session before signing in again still works")
	}
	b.signIn(token)
	cookie := b.http.Jar.Cookies(mustURL(t, e.url+"/console"))
	r := b.post("/console/sign-out", url.Values{"csrf_token": {b.csrf("/console/messages")}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d\n%s", r.code, r.body)
	}
	if b.signedIn() {
		t.Fatal("still signed in after signing out")
	}
	// The old cookie, replayed, opens nothing: the session is gone
	// server-side, not only from the browser.
	b.http.Jar.SetCookies(mustURL(t, e.url+"/console"), cookie)
	if b.signedIn() {
		t.Fatal("the signed-out session's cookie still works")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSignInRefused(t *testing.T) {
	e := newEnv(t, console.Config{})
	revokedKey, revoked := e.key(apikey.ScopeRead)
	if err := e.store.RevokeKey(context.Background(), revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	_, good := e.key(apikey.ScopeRead)
	for _, tc := range []struct {
		name   string
		form   func(b *browser) url.Values
		header map[string]string
		want   int
	}{
		{"wrong key", func(b *browser) url.Values {
			return url.Values{"csrf_token": {b.csrf("/console")}, "key": {"mg_nope_nope"}}
		}, nil, http.StatusUnauthorized},
		{"revoked key", func(b *browser) url.Values {
			return url.Values{"csrf_token": {b.csrf("/console")}, "key": {revoked}}
		}, nil, http.StatusUnauthorized},
		{"no csrf token", func(b *browser) url.Values {
			b.csrf("/console") // the sign-in cookie is set, the token not sent
			return url.Values{"key": {good}}
		}, nil, http.StatusForbidden},
		{"token of another browser", func(b *browser) url.Values {
			other := e.browser()
			return url.Values{"csrf_token": {other.csrf("/console")}, "key": {good}}
		}, nil, http.StatusForbidden},
		{"cross-site", func(b *browser) url.Values {
			return url.Values{"csrf_token": {b.csrf("/console")}, "key": {good}}
		}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"other origin", func(b *browser) url.Values {
			return url.Values{"csrf_token": {b.csrf("/console")}, "key": {good}}
		}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			r := b.do(http.MethodPost, "/console/sign-in", tc.form(b), tc.header)
			if r.code != tc.want {
				t.Fatalf("sign-in: %d, want %d\n%s", r.code, tc.want, r.body)
			}
			if b.signedIn() {
				t.Fatal("signed in")
			}
		})
	}
}

func TestSessionExpiry(t *testing.T) {
	cfg := console.Config{IdleTimeout: 30 * time.Minute, SessionLifetime: 2 * time.Hour}
	e := newEnv(t, cfg)
	_, token := e.key(apikey.ScopeRead)
	t.Run("idle", func(t *testing.T) {
		b := e.browser()
		b.signIn(token)
		e.clock.Advance(29 * time.Minute)
		if !b.signedIn() {
			t.Fatal("ended before the idle timeout")
		}
		e.clock.Advance(29 * time.Minute) // 29 min after the last request
		if !b.signedIn() {
			t.Fatal("a request did not renew the idle timeout")
		}
		e.clock.Advance(30 * time.Minute)
		if b.signedIn() {
			t.Fatal("still signed in after 30 idle minutes")
		}
	})
	t.Run("polling is not activity", func(t *testing.T) {
		b := e.browser()
		b.signIn(token)
		for i := 0; i < 7; i++ { // the open list's refresh, for 35 minutes
			e.clock.Advance(5 * time.Minute)
			if r := b.get("/console/messages/rows"); i < 5 && r.code != http.StatusOK {
				t.Fatalf("poll after %d min: %d", 5*(i+1), r.code)
			}
		}
		if b.signedIn() {
			t.Fatal("an open list's refresh kept an idle session alive")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		b := e.browser()
		b.signIn(token)
		for elapsed := time.Duration(0); elapsed+20*time.Minute < 2*time.Hour; elapsed += 20 * time.Minute {
			e.clock.Advance(20 * time.Minute)
			if !b.signedIn() {
				t.Fatalf("ended after %s of use", elapsed+20*time.Minute)
			}
		}
		e.clock.Advance(20 * time.Minute) // 2 h after sign-in
		if b.signedIn() {
			t.Fatal("still signed in after the session lifetime")
		}
	})
}

func TestRevokedKeyEndsSession(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, admin := e.key(apikey.ScopeAdmin)
	k, token := e.key(apikey.ScopeRead)
	b := e.browser()
	b.signIn(token)
	if !b.signedIn() {
		t.Fatal("not signed in")
	}
	req, _ := http.NewRequest(http.MethodDelete, e.url+"/v1/keys/"+k.ID, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if b.signedIn() {
		t.Fatal("the session of a revoked key is still open")
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(allScopes()...)
	id := e.sendMessage(token, `{"from":"a@shop.example","to":["b@example.org"],"subject":"later",
		"text":"x","send_at":"`+e.clock.Now().Add(time.Hour).Format(time.RFC3339)+`"}`)
	b := e.browser()
	b.signIn(token)
	other := e.browser()
	other.signIn(token)
	path := "/console/messages/" + id + "/cancel"
	for _, tc := range []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf_token": {"x"}}, nil},
		{"another session's token", url.Values{"csrf_token": {other.csrf("/console/messages")}}, nil},
		{"cross-site", url.Values{"csrf_token": {b.csrf("/console/messages")}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do(http.MethodPost, path, tc.form, tc.header)
			if r.code != http.StatusForbidden {
				t.Fatalf("cancel: %d, want 403\n%s", r.code, r.body)
			}
		})
	}
	m, err := e.store.GetMessage(context.Background(), store.DefaultProjectID, id)
	if err != nil || m.Status != store.StatusScheduled {
		t.Fatalf("after refused cancels: status %q, %v; want scheduled", m.Status, err)
	}
	// The htmx header carries the token as well as the form field.
	r := b.do(http.MethodPost, path, url.Values{}, map[string]string{"X-CSRF-Token": b.csrf("/console/messages")})
	if r.code != http.StatusSeeOther {
		t.Fatalf("cancel with the token: %d\n%s", r.code, r.body)
	}
	m, err = e.store.GetMessage(context.Background(), store.DefaultProjectID, id)
	if err != nil || m.Status != store.StatusCancelled {
		t.Fatalf("after cancel: status %q, %v; want cancelled", m.Status, err)
	}
}

func TestSignInRateLimit(t *testing.T) {
	e := newEnv(t, console.Config{SignInRate: ratelimit.Limit{Events: 3, Period: time.Minute}})
	b := e.browser()
	try := func() response {
		return b.post("/console/sign-in", url.Values{"csrf_token": {b.csrf("/console")}, "key": {"mg_x_y"}})
	}
	for i := range 3 {
		if r := try(); r.code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.code)
		}
	}
	r := try()
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("attempt 4: %d Retry-After %q, want 429 with Retry-After", r.code, r.header.Get("Retry-After"))
	}
}

// pagePolicy is the CSP every console page must carry.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; frame-src 'self'"

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(allScopes()...)
	id := e.sendMessage(token, `{"from":"a@shop.example","to":["b@example.org"],"subject":"s","html":"<p>hi</p>"}`)
	b := e.browser()
	signedOut := b.get("/console")
	b.signIn(token)
	pages := map[string]response{"sign-in": signedOut}
	for _, p := range []string{"/console/messages", "/console/messages/" + id, "/console/nope",
		"/console/assets/console.css", "/console/domains"} {
		pages[p] = b.get(p)
	}
	for name, r := range pages {
		if got := r.header.Get("Content-Security-Policy"); got != pagePolicy {
			t.Errorf("%s: CSP %q", name, got)
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Frame-Options %q, X-Content-Type-Options %q", name,
				r.header.Get("X-Frame-Options"), r.header.Get("X-Content-Type-Options"))
		}
	}
	html := b.get("/console/messages/" + id + "/html")
	if got := html.header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "sandbox; default-src 'none';") ||
		html.body != "<p>hi</p>" {
		t.Errorf("message HTML: CSP %q body %q", got, html.body)
	}
	for _, c := range b.http.Jar.Cookies(mustURL(t, e.url+"/console")) {
		if c.Name == "mailgate_console" {
			return
		}
	}
	t.Error("no session cookie")
}

func TestSessionCookieAttributes(t *testing.T) {
	e := newEnv(t, console.Config{SecureCookies: true})
	_, token := e.key(apikey.ScopeRead)
	b := e.browser()
	r := b.post("/console/sign-in", url.Values{"csrf_token": {b.csrf("/console")}, "key": {token}})
	var set string
	for _, c := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "mailgate_console=") {
			set = c
		}
	}
	for _, want := range []string{"Path=/console", "HttpOnly", "SameSite=Strict", "Secure"} {
		if !strings.Contains(set, want) {
			t.Errorf("session cookie %q lacks %s", set, want)
		}
	}
	if strings.Contains(set, "Max-Age") || strings.Contains(set, "Expires") {
		t.Errorf("session cookie %q outlives the browser session", set)
	}
}

func TestScopes(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(apikey.ScopeDomains)
	b := e.browser()
	b.signIn(token)
	home := b.get("/console")
	if home.header.Get("Location") != "/console/domains" {
		t.Fatalf("home of a domains key: %d to %q, want /console/domains", home.code, home.header.Get("Location"))
	}
	r := b.get("/console/messages")
	if r.code != http.StatusForbidden {
		t.Fatalf("messages without messages:read: %d, want 403", r.code)
	}
	if strings.Contains(b.get("/console/domains").body, `href="/console/messages"`) {
		t.Error("the menu links to messages for a key without messages:read")
	}
}

func TestProjectSwitch(t *testing.T) {
	e := newEnv(t, console.Config{})
	ctx := context.Background()
	other, err := e.store.CreateProject(ctx, "Other project")
	if err != nil {
		t.Fatal(err)
	}
	_, sender := e.projectKey(other.ID, apikey.ScopeSend)
	e.sendMessage(sender, `{"from":"a@shop.example","to":["b@example.org"],"subject":"in the other project","text":"x"}`)
	_, admin := e.key(apikey.ScopeAdmin)
	b := e.browser()
	b.signIn(admin)
	if strings.Contains(b.get("/console/messages").body, "in the other project") {
		t.Fatal("the default project shows the other project's message")
	}
	r := b.post("/console/project", url.Values{"csrf_token": {b.csrf("/console/messages")}, "project_id": {other.ID}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("switch: %d\n%s", r.code, r.body)
	}
	if !strings.Contains(b.get("/console/messages").body, "in the other project") {
		t.Fatal("after switching, the other project's message is not listed")
	}
	r = b.post("/console/project", url.Values{"csrf_token": {b.csrf("/console/messages")}, "project_id": {"nope"}})
	if r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "project_id") {
		t.Fatalf("switch to an unknown project: %d, want 422 naming project_id\n%s", r.code, r.body)
	}

	_, reader := e.key(apikey.ScopeRead)
	nb := e.browser()
	nb.signIn(reader)
	r = nb.post("/console/project", url.Values{"csrf_token": {nb.csrf("/console/messages")}, "project_id": {other.ID}})
	if r.code != http.StatusForbidden {
		t.Fatalf("a non-admin key switched projects: %d", r.code)
	}
}

func TestMessagesFilterErrors(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(apikey.ScopeRead)
	b := e.browser()
	b.signIn(token)
	for _, tc := range []struct{ query, field string }{
		{"status=bogus", "status"},
		{"since=yesterday", "since"},
		{"until=2026-13-01T00:00", "until"},
		{"cursor=nope", "cursor"},
		{"from_domain=not_a_domain!", "from_domain"},
	} {
		r := b.get("/console/messages?" + tc.query)
		if r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "<strong>"+tc.field+"</strong>") {
			t.Errorf("%s: %d, want 422 naming %s", tc.query, r.code, tc.field)
		}
	}
}

// TestOtherProjectsMessagesInvisible: a key of another project neither
// sees nor cancels this project's message, on any of its routes.
func TestOtherProjectsMessagesInvisible(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, tokenA := e.key(allScopes()...)
	id := e.sendMessage(tokenA, `{"from":"a@shop.example","to":["b@example.org"],"subject":"s","html":"<p>hi</p>","send_at":"`+
		e.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"}`)
	other, err := e.store.CreateProject(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	_, tokenB := e.projectKey(other.ID, apikey.ScopeSend, apikey.ScopeRead)
	b := e.browser()
	b.signIn(tokenB)
	for _, p := range []string{"/console/messages/" + id, "/console/messages/" + id + "/html", "/console/messages/" + id + "/raw"} {
		if r := b.get(p); r.code != http.StatusNotFound {
			t.Errorf("GET %s with another project's key: %d, want 404", p, r.code)
		}
	}
	r := b.post("/console/messages/"+id+"/cancel", url.Values{"csrf_token": {b.csrf("/console/messages")}})
	if r.code != http.StatusNotFound {
		t.Errorf("cancel with another project's key: %d, want 404", r.code)
	}
	m, err := e.store.GetMessage(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status == store.StatusCancelled {
		t.Error("another project's key cancelled the message")
	}
	if list := b.get("/console/messages"); strings.Contains(list.body, id) {
		t.Error("another project's list shows the message")
	}
}
