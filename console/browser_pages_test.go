package console_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/dnscheck/dnstest"
	"github.com/mailgate/mailgate/store"
)

// hostile is tenant-controlled text that runs if a page fails to escape
// it: it calls the trap's mgTrap binding or loads from the trap server.
func hostile(tr *trap, n string) string {
	return `<img src=x onerror=mgTrap(` + n + `)><script>mgTrap(` + n + `)</script>"'><svg onload=mgTrap(` + n +
		`)><img src="` + tr.URL + `/` + n + `">`
}

// hostileShort is hostile in at most 100 characters (a key's name).
func hostileShort(n string) string {
	return `<script>mgTrap(` + n + `)</script><img src=x onerror=mgTrap(` + n + `)>`
}

// setting is the value of a MAILGATE_* variable the gateway runs with.
func (g *gateway) setting(name string) string {
	for _, kv := range g.env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// api calls the gateway's API with token: the status and the decoded
// JSON answer.
func (g *gateway) api(method, path, token string, body any) (int, map[string]any) {
	g.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			g.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, g.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// text is the text of the first element sel matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(css(sel)))
}

// TestBrowserDomains registers a domain through the form and sees the
// records to publish with their copy buttons, publishes one of them in a
// local DNS server and verifies: that record is ok, the others missing.
// A hostile name typed into the form comes back escaped.
func TestBrowserDomains(t *testing.T) {
	chromium(t)
	dns := dnstest.Start(t)
	g := startGateway(t, "MAILGATE_DNS_SERVER="+dns.Addr)
	_, token := g.createKey(apikey.ScopeDomains, apikey.ScopeRead)
	tr := newTrap(t)
	ctx := newBrowser(t, tr)
	signInBrowser(t, ctx, g, token)

	do(t, ctx, chromedp.Navigate(g.URL+"/console/domains"), chromedp.WaitVisible(css("#d-name")),
		chromedp.SendKeys(css("#d-name"), hostile(tr, "1")), chromedp.Submit(css("#d-name")),
		chromedp.WaitVisible(css("ul.error")))
	if got := text(t, ctx, "ul.error"); !strings.Contains(got, "/name") {
		t.Errorf("a hostile name: the error %q does not name the field", got)
	}

	do(t, ctx, chromedp.Navigate(g.URL+"/console/domains"), chromedp.WaitVisible(css("#d-name")),
		chromedp.SendKeys(css("#d-name"), "Shop.Example"), chromedp.Submit(css("#d-name")),
		chromedp.WaitVisible(css("#dns-records")))
	if loc := get(t, ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/domains/shop.example?created=1") {
		t.Errorf("after registering: at %s", loc)
	}
	names := get(t, ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#dns-records code[id^="rn-"]')].map(e => e.textContent)`))
	var dkim []string
	for _, n := range names {
		if strings.HasSuffix(n, "._domainkey.shop.example") {
			dkim = append(dkim, n)
		}
	}
	if len(dkim) != 2 || !slices.Contains(names, "_dmarc.shop.example") {
		t.Fatalf("records to publish %q: want two DKIM records and the DMARC one", names)
	}
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('button.copy:not([hidden])').length`)); n != 2*len(names) {
		t.Errorf("%d copy buttons shown, want one per name and value (%d)", n, 2*len(names))
	}
	do(t, ctx, chromedp.Click(css(`button.copy[data-copy="rv-0"]`)))
	waitJS(t, ctx, 5*time.Second, "the copy button to answer",
		`document.querySelector('button.copy[data-copy="rv-0"]').textContent !== 'Copy'`)
	screenshot(t, ctx, "domain")

	// Publish the first DKIM record only, then verify.
	value := text(t, ctx, "#rv-0")
	dns.AddTXT(names[0], value)
	do(t, ctx, chromedp.Click(css("#verify")), chromedp.WaitVisible(css("#verify-summary")))
	results := get(t, ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#dns-records td.result .check')].map(e => e.textContent)`))
	if len(results) != len(names) || results[0] != "ok" {
		t.Fatalf("results %q: want the published record ok", results)
	}
	for i, r := range results[1:] {
		if r != "missing" {
			t.Errorf("record %s: result %q, want missing", names[i+1], r)
		}
	}
	if st := text(t, ctx, "#domain-status"); st != store.DomainVerified {
		t.Errorf("status after the DKIM record is found: %q", st)
	}
	screenshot(t, ctx, "domain-verified")

	do(t, ctx, chromedp.Navigate(g.URL+"/console/domains"), chromedp.WaitVisible(css("#domains")))
	screenshot(t, ctx, "domains")
	tr.assertUntripped(t)
}

// TestBrowserSuppressions adds and removes suppressions through the
// forms, searches, exports the list as CSV, removes everything, imports
// the export and finds the list as it was; hostile addresses and notes
// stay text, and formula cells are neutralised in the file.
func TestBrowserSuppressions(t *testing.T) {
	chromium(t)
	g := startGateway(t)
	_, token := g.createKey(apikey.ScopeSuppressions)
	tr := newTrap(t)
	ctx := newBrowser(t, tr)
	signInBrowser(t, ctx, g, token)

	add := func(email, reason, note string) {
		t.Helper()
		do(t, ctx, chromedp.Navigate(g.URL+"/console/suppressions"), chromedp.WaitVisible(css("#a-email")),
			chromedp.SendKeys(css("#a-email"), email),
			chromedp.SetValue(css("#a-reason"), reason),
			chromedp.SendKeys(css("#a-note"), note),
			chromedp.Submit(css("#a-email")),
			chromedp.WaitVisible(css("p.notice")))
	}
	add("ann@example.org", store.ReasonManual, "asked by phone")
	add("=cmd@example.org", store.ReasonComplaint, "=HYPERLINK(\"http://evil.example\")")
	add("bob@example.org", store.ReasonHardBounce, hostile(tr, "2"))
	add("gone@example.org", store.ReasonManual, "to remove")

	rows := func() []string {
		t.Helper()
		return get(t, ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#suppressions tbody tr')].filter(r => r.querySelector('td.email')).map(r => r.querySelector('td.email').textContent + '|' + r.querySelector('td.note').textContent)`))
	}
	if got := rows(); len(got) != 4 || !slices.Contains(got, "bob@example.org|"+hostile(tr, "2")) {
		t.Fatalf("the list %q: want the four, the hostile note as text", got)
	}
	screenshot(t, ctx, "suppressions")

	// Remove one.
	remove := func(sel string) {
		t.Helper()
		do(t, ctx, chromedp.Navigate(g.URL+"/console/suppressions"), chromedp.WaitVisible(css("#suppressions")),
			chromedp.Click(css(sel)), chromedp.WaitVisible(css("p.notice")))
	}
	remove(`#suppressions form:has(input[value="gone@example.org"]) button`)
	if got := text(t, ctx, "p.notice"); got != "gone@example.org is no longer suppressed." {
		t.Errorf("after remove: %q", got)
	}
	before := rows()
	if len(before) != 3 || slices.Contains(before, "gone@example.org|to remove") {
		t.Fatalf("after remove, the list %q", before)
	}
	// Search.
	do(t, ctx, chromedp.SendKeys(css("#s-q"), "CMD"), chromedp.Submit(css("#s-q")))
	waitJS(t, ctx, 10*time.Second, "the search's answer", `location.search.includes('q=CMD') && document.readyState === 'complete'`)
	if got := rows(); len(got) != 1 || !strings.HasPrefix(got[0], "=cmd@example.org|") {
		t.Errorf("search for CMD: %q", got)
	}

	// Export through the page's link (same session), as the browser fetches it.
	do(t, ctx, chromedp.Navigate(g.URL+"/console/suppressions"), chromedp.WaitVisible(css("#export")))
	csvText := get(t, ctx, chromedp.Evaluate[string](`fetch(document.querySelector('#export').href).then(r => r.text())`,
		chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(csvText, "email,reason,note,created_at\r\n") {
		t.Fatalf("export: %q", csvText)
	}
	for _, cell := range []string{`'=cmd@example.org`, `"'=HYPERLINK(""http://evil.example"")"`} {
		if !strings.Contains(csvText, cell) {
			t.Errorf("export lacks the neutralised cell %s:\n%s", cell, csvText)
		}
	}

	// Remove everything, then import the export.
	for range before {
		remove(`#suppressions tbody form button`)
	}
	if got := rows(); len(got) != 0 {
		t.Fatalf("after removing all: %q", got)
	}
	file := filepath.Join(t.TempDir(), "suppressions.csv")
	if err := os.WriteFile(file, []byte(csvText), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(g.URL+"/console/suppressions"), chromedp.WaitVisible(css("#i-file")),
		chromedp.SetUploadFiles(css("#i-file"), []string{file}), chromedp.Submit(css("#i-file")),
		chromedp.WaitVisible(css("p.notice")))
	if got := text(t, ctx, "p.notice"); got != "Imported: 3 added, 0 updated." {
		t.Errorf("after import: %q", got)
	}
	after := rows()
	if !slices.Equal(slices.Sorted(slices.Values(after)), slices.Sorted(slices.Values(before))) {
		t.Errorf("the round trip changed the list:\nbefore %q\nafter  %q", before, after)
	}

	// A bad file is refused whole, naming the line.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	var badCSV bytes.Buffer
	cw := csv.NewWriter(&badCSV)
	_ = cw.WriteAll([][]string{{"email", "note"}, {"new@example.org", "x"}, {"not an address", hostile(tr, "3")}})
	if err := os.WriteFile(bad, badCSV.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.SetUploadFiles(css("#i-file"), []string{bad}), chromedp.Submit(css("#i-file")),
		chromedp.WaitVisible(css("#import-errors")))
	if got := text(t, ctx, "#import-errors"); !strings.Contains(got, "line:3:email") {
		t.Errorf("the refused import says %q", got)
	}
	if got := rows(); len(got) != 3 {
		t.Errorf("a refused import changed the list: %q", got)
	}
	screenshot(t, ctx, "suppressions-import-refused")
	tr.assertUntripped(t)
}

// TestBrowserPagesHostileContent fills every page with tenant-controlled text
// that would run if shown unescaped (a webhook URL and description,
// inbound subjects and texts, a key name, suppression notes) and visits
// each page and action as an admin key: nothing runs, and each page is
// screenshotted. A key without the webhooks scope sees no webhook page.
func TestBrowserPagesHostileContent(t *testing.T) {
	chromium(t)
	g := startGateway(t, "MAILGATE_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8", "MAILGATE_WEBHOOK_ALLOW_HTTP=true")
	_, admin := g.createKey(apikey.AllScopes()...)
	tr := newTrap(t)

	code, ep := g.api(http.MethodPost, "/v1/webhooks", admin, map[string]any{
		"url":         "http://127.0.0.1:1/hook?x=" + strings.ReplaceAll(hostile(tr, "4"), " ", "%20"),
		"description": hostile(tr, "5"),
	})
	if code != http.StatusCreated {
		t.Fatalf("create webhook: %d %v", code, ep)
	}
	if code, out := g.api(http.MethodPost, "/v1/suppressions", admin, map[string]any{
		"email": "eve@example.org", "note": hostile(tr, "6")}); code != http.StatusCreated {
		t.Fatalf("suppress: %d %v", code, out)
	}
	recordInbound(t, g, tr)

	ctx := newBrowser(t, tr)
	signInBrowser(t, ctx, g, admin)
	epID := ep["id"].(string)

	do(t, ctx, chromedp.Navigate(g.URL+"/console/webhooks"), chromedp.WaitVisible(css("#webhooks")))
	if got := text(t, ctx, "#webhooks td.description"); got != hostile(tr, "5") {
		t.Errorf("the description shows as %q", got)
	}
	screenshot(t, ctx, "webhooks")
	do(t, ctx, chromedp.Navigate(g.URL+"/console/webhooks/"+epID), chromedp.WaitVisible(css("#send-test")),
		chromedp.Click(css("#send-test")), chromedp.WaitVisible(css("p.notice")))
	waitFor(t, 30*time.Second, "the test delivery's attempt in the log", func() bool {
		do(t, ctx, chromedp.Reload(), chromedp.WaitVisible(css("#deliveries")))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](
			`document.querySelectorAll('#deliveries tbody form[action$="/retry"]').length`))
		return err == nil && n > 0
	})
	if got := text(t, ctx, "#deliveries tbody tr"); !strings.Contains(got, "test") {
		t.Errorf("the log's row: %q", got)
	}
	do(t, ctx, chromedp.Click(css(`#deliveries form[action$="/retry"] button`)))
	waitJS(t, ctx, 10*time.Second, "the retry's answer", `location.search.includes('retried=1') && document.readyState === 'complete'`)
	do(t, ctx, chromedp.Click(css(`form[action$="/rotate-secret"] button`)), chromedp.WaitVisible(css("#new-secret")))
	if s := text(t, ctx, "#new-secret"); !strings.HasPrefix(s, "whsec_") {
		t.Errorf("the rotated secret shows as %q", s)
	}
	screenshot(t, ctx, "webhook")

	do(t, ctx, chromedp.Navigate(g.URL+"/console/inbound"), chromedp.WaitVisible(css("#inbound")))
	if got := text(t, ctx, "#inbound strong.subject"); got != hostile(tr, "7") {
		t.Errorf("the reply's subject shows as %q", got)
	}
	if got := text(t, ctx, "#inbound pre.reply"); got != hostile(tr, "8") {
		t.Errorf("the reply's stripped text shows as %q", got)
	}
	screenshot(t, ctx, "inbound")
	do(t, ctx, chromedp.Click(css(`#inbound a[href$="/original"]`)), chromedp.WaitVisible(css("#original")))
	if got := text(t, ctx, "#original"); !strings.Contains(got, hostile(tr, "9")) {
		t.Errorf("the original shows as %q", got)
	}
	screenshot(t, ctx, "inbound-original")

	do(t, ctx, chromedp.Navigate(g.URL+"/console/suppressions"), chromedp.WaitVisible(css("#suppressions")))
	screenshot(t, ctx, "suppressions-hostile")

	do(t, ctx, chromedp.Navigate(g.URL+"/console/keys"), chromedp.WaitVisible(css("#k-name")),
		chromedp.SendKeys(css("#k-name"), hostileShort("10")),
		chromedp.Click(css(`input[name="scope"][value="webhooks"]`)),
		chromedp.Click(css(`input[name="scope"][value="messages:read"]`)),
		chromedp.Submit(css("#k-name")), chromedp.WaitVisible(css("#new-token")))
	limited := text(t, ctx, "#new-token")
	if !strings.HasPrefix(limited, "mg_") {
		t.Fatalf("the new token shows as %q", limited)
	}
	names := get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#keys td.name')].map(e => e.textContent)`))
	if !slices.Contains(names, hostileShort("10")) {
		t.Errorf("key names %q lack the new one as text", names)
	}
	screenshot(t, ctx, "keys")
	tr.assertUntripped(t)

	// Scopes: the new key (webhooks, messages:read) has no suppression,
	// domain or key page; without webhooks there is no webhook page.
	ctx2 := newBrowser(t, tr)
	signInBrowser(t, ctx2, g, limited)
	menu := get(t, ctx2, chromedp.Text(css(`nav[aria-label="Main"]`)))
	for _, hidden := range []string{"Suppressions", "Domains", "Keys"} {
		if strings.Contains(menu, hidden) {
			t.Errorf("a webhooks/messages:read key's menu %q shows %s", menu, hidden)
		}
	}
	do(t, ctx2, chromedp.Navigate(g.URL+"/console/keys"), chromedp.WaitVisible(css("p.error")))
	_, reader := g.createKey(apikey.ScopeRead)
	ctx3 := newBrowser(t, tr)
	signInBrowser(t, ctx3, g, reader)
	if menu := get(t, ctx3, chromedp.Text(css(`nav[aria-label="Main"]`))); strings.Contains(menu, "Webhooks") {
		t.Errorf("a messages:read key's menu %q shows Webhooks", menu)
	}
	do(t, ctx3, chromedp.Navigate(g.URL+"/console/webhooks/"+epID), chromedp.WaitVisible(css("p.error")))
	if got := text(t, ctx3, "p.error"); !strings.Contains(got, "webhooks") {
		t.Errorf("a messages:read key on a webhook page: %q", got)
	}
	tr.assertUntripped(t)
}

// recordInbound stores two unmatched received mails with hostile content
// in the gateway's database, as the poller would: a reply (subject,
// stripped text, original) and a bounce (diagnostic).
func recordInbound(t *testing.T, g *gateway, tr *trap) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: g.setting("MAILGATE_DATABASE_URL")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reply, _ := json.Marshal(map[string]any{"kind": "reply", "results": []any{},
		"reply": map[string]string{"from": "ann@example.org", "subject": hostile(tr, "7"), "text": hostile(tr, "8")}})
	bounce, _ := json.Marshal(map[string]any{"kind": "bounce", "results": []any{map[string]any{
		"recipient": "bob@example.org", "status": "5.1.1", "diagnostic": hostile(tr, "11")}}})
	raw := "From: ann@example.org\r\nSubject: " + hostile(tr, "9") + "\r\n\r\n" + hostile(tr, "9") + "\r\n"
	for i, rec := range []store.InboundRecord{
		{Mailbox: "test", MailboxMessageID: "1", ReceivedAt: time.Now(), Kind: "reply", Summary: reply,
			RawSize: int64(len(raw)), RawHead: []byte(raw)},
		{Mailbox: "test", MailboxMessageID: "2", ReceivedAt: time.Now().Add(-time.Minute), Kind: "bounce", Summary: bounce},
	} {
		if _, err := st.RecordInbound(ctx, rec); err != nil {
			t.Fatalf("record inbound %d: %v", i, err)
		}
	}
}

// watchPage makes every page of ctx report a Content-Security-Policy
// violation, an uncaught error or a console error to the trap.
func watchPage(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `document.addEventListener("securitypolicyviolation", function (e) {
				mgTrap("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
			});
			window.addEventListener("error", function (e) { mgTrap("error: " + e.message); });
			var consoleError = console.error;
			console.error = function () { mgTrap("console.error: " + [].join.call(arguments, " ")); consoleError.apply(console, arguments); };`,
	}); err != nil {
		t.Fatalf("watch the page: %v", err)
	}
}

// TestBrowserOverview: after sign-in the console opens on the overview;
// once the worker rolled up two messages sent through the API, the totals
// show them and uPlot draws both charts, with no CSP violation or script
// error; the window switcher and a domain's link work.
func TestBrowserOverview(t *testing.T) {
	chromium(t)
	g := startGateway(t)
	_, token := g.createKey(apikey.ScopeSend, apikey.ScopeRead)
	tr := newTrap(t)
	ctx := newBrowser(t, tr)
	watchPage(t, ctx)
	for range 2 {
		g.send(token, map[string]any{"from": "orders@shop.example", "to": []string{"ann@example.org"},
			"subject": "Order", "text": "x"})
	}
	signInBrowser(t, ctx, g, token)
	if loc := get(t, ctx, chromedp.Location()); !strings.HasSuffix(loc, "/console/overview") {
		t.Errorf("after sign-in: at %s, want the overview", loc)
	}
	waitFor(t, 60*time.Second, "the two messages sent, in the overview's totals", func() bool {
		do(t, ctx, chromedp.Navigate(g.URL+"/console/overview?window=hour"), chromedp.WaitVisible(css("#totals")))
		sent, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(function () { var r = document.querySelector('#totals tbody th a[href$="from_domain=shop.example"]');
				return r ? r.closest("tr").querySelectorAll("td")[1].textContent : ""; })()`))
		return err == nil && sent == "2"
	})
	waitJS(t, ctx, 10*time.Second, "uPlot's two charts", `document.querySelectorAll("div.plot canvas").length === 2`)
	if got := text(t, ctx, "#totals tbody td.rate"); got != "0.00 %" {
		t.Errorf("bounce rate %q, want 0.00 %%", got)
	}
	screenshot(t, ctx, "overview")
	// On a phone the tables scroll sideways and the charts take the
	// screen's width.
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: 390, Height: 844, DeviceScaleFactor: 1, Mobile: true}); err != nil {
		t.Fatalf("phone size: %v", err)
	}
	waitJS(t, ctx, 10*time.Second, "the charts at the phone's width",
		`document.querySelector("div.plot canvas").clientWidth <= 390`)
	screenshot(t, ctx, "overview-phone")

	do(t, ctx, chromedp.Click(css(`nav.windows a[href*="window=week"]`)), chromedp.WaitVisible(css("#totals")))
	if loc := get(t, ctx, chromedp.Location()); !strings.Contains(loc, "window=week") {
		t.Errorf("the week link went to %s", loc)
	}
	waitJS(t, ctx, 10*time.Second, "the week's charts", `document.querySelectorAll("div.plot canvas").length === 2`)
	do(t, ctx, chromedp.Click(css(`#totals tbody th a[href$="from_domain=shop.example"]`)),
		chromedp.WaitVisible(css("#message-rows")))
	if n := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#message-rows tr a").length`)); n != 2 {
		t.Errorf("the domain's messages list shows %d messages, want 2", n)
	}
	tr.assertUntripped(t)
}
