package console_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/console"
	"github.com/mailgate/mailgate/store"
)

// TestPageScopes: each page and action of the domain, suppression,
// webhook and key pages refuses a key without its scope (403), reads and
// writes alike, and a form without its CSRF token changes nothing.
func TestPageScopes(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(apikey.ScopeRead)
	b := e.browser()
	b.signIn(token)
	tok := b.csrf("/console/inbound")
	for _, path := range []string{"/console/domains", "/console/suppressions", "/console/suppressions/export",
		"/console/webhooks", "/console/webhooks/x", "/console/webhooks/x/deliveries/y", "/console/keys"} {
		if r := b.get(path); r.code != http.StatusForbidden {
			t.Errorf("GET %s with a messages:read key: %d, want 403", path, r.code)
		}
	}
	for _, path := range []string{"/console/domains", "/console/suppressions", "/console/suppressions/remove",
		"/console/webhooks/x/test", "/console/keys", "/console/keys/x/revoke"} {
		if r := b.post(path, url.Values{"csrf_token": {tok}, "email": {"a@example.org"}, "name": {"n"}}); r.code != http.StatusForbidden {
			t.Errorf("POST %s with a messages:read key: %d, want 403", path, r.code)
		}
	}

	_, sup := e.key(apikey.ScopeSuppressions)
	b2 := e.browser()
	b2.signIn(sup)
	r := b2.post("/console/suppressions", url.Values{"email": {"a@example.org"}})
	if r.code != http.StatusForbidden {
		t.Errorf("add without the CSRF token: %d, want 403", r.code)
	}
	if r := b2.get("/console/suppressions"); strings.Contains(r.body, "a@example.org") {
		t.Error("a form without its token added the address")
	}
}

// TestDomainPageWithoutJavaScript: the records to publish are in the HTML
// as selectable text; the copy buttons are hidden until console.js shows
// them.
func TestDomainPageWithoutJavaScript(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(apikey.ScopeDomains)
	b := e.browser()
	b.signIn(token)
	// Registered in the store (this env has no master key to seal one).
	if _, err := e.store.CreateDomain(context.Background(), store.Domain{ProjectID: store.DefaultProjectID,
		Name: "shop.example", CreatedAt: e.clock.Now(), Keys: []store.DKIMKey{{Selector: "mg1", Algorithm: "ed25519",
			PrivateKeySealed: []byte("sealed"), PublicRecord: "v=DKIM1; k=ed25519; p=AAAA", CreatedAt: e.clock.Now()}}}); err != nil {
		t.Fatal(err)
	}
	page := b.get("/console/domains/shop.example")
	if page.code != http.StatusOK {
		t.Fatalf("domain page: %d", page.code)
	}
	for _, want := range []string{`<code class="copyable" id="rn-0">`, `_domainkey.shop.example</code>`,
		`<code class="copyable value" id="rv-0">v=DKIM1; k=ed25519; p=AAAA</code>`, `data-copy="rv-0" hidden>Copy</button>`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// TestFormTooLarge: a form over its page's limit is refused as too large
// (413, saying so), not as a missing CSRF token, and changes nothing,
// multipart or not; an import within its limit still goes through.
func TestFormTooLarge(t *testing.T) {
	e := newEnv(t, console.Config{})
	_, token := e.key(apikey.ScopeSuppressions)
	b := e.browser()
	b.signIn(token)
	tok := b.csrf("/console/suppressions")

	multipartPost := func(path string, rows int) response {
		t.Helper()
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		if err := mw.WriteField("csrf_token", tok); err != nil {
			t.Fatal(err)
		}
		if err := mw.WriteField("email", "x@example.org"); err != nil {
			t.Fatal(err)
		}
		fw, err := mw.CreateFormFile("file", "list.csv")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(fw, "email")
		for i := range rows {
			fmt.Fprintf(fw, "user%07d@example.org\n", i)
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.do(http.MethodPost, path, nil, map[string]string{"Content-Type": mw.FormDataContentType()}, &body)
	}
	// The add form takes 64 KiB; the import form the same code with 10 MiB.
	if r := multipartPost("/console/suppressions", 4_000); r.code != http.StatusRequestEntityTooLarge ||
		!strings.Contains(r.body, "larger than the 64 KiB") {
		t.Errorf("a 100 KiB multipart form: %d, want 413 saying the form is too large", r.code)
	}
	r := b.post("/console/suppressions", url.Values{"csrf_token": {tok}, "email": {"x@example.org"},
		"note": {strings.Repeat("n", 70<<10)}})
	if r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 70 KiB form: %d, want 413", r.code)
	}
	if list := b.get("/console/suppressions?q=x%40example.org"); strings.Contains(list.body, "x@example.org</") {
		t.Error("a refused form added its address")
	}
	if r := multipartPost("/console/suppressions/import", 100); r.code != http.StatusSeeOther {
		t.Errorf("an import of 100 rows: %d, want 303", r.code)
	}
}
