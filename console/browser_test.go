package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/apikey"
)

// TestBrowserMessages signs in, sends a message through the API and
// watches it appear in the open list and reach sent (the list refreshes
// itself), opens it and sees its events and its rendered HTML, and checks
// that a form posted without its CSRF token is refused and that revoking
// the key ends the session.
func TestBrowserMessages(t *testing.T) {
	chromium(t)
	g := startGateway(t)
	keyID, token := g.createKey(apikey.ScopeSend, apikey.ScopeRead)
	tr := newTrap(t)
	ctx := newBrowser(t, tr)

	do(t, ctx, chromedp.Navigate(g.URL+"/console"), chromedp.WaitVisible(css("#key")))
	screenshot(t, ctx, "sign-in")
	signInBrowser(t, ctx, g, token)
	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages"), chromedp.WaitVisible(css("#message-rows")))

	id := g.send(token, map[string]any{
		"from": "Shop <orders@shop.example>", "to": []string{"ann@example.org"},
		"subject": "Your order #1234", "text": "Thanks for your order.",
		"html": `<h1 id="greeting">Thanks for your order</h1><p>It ships <b>tomorrow</b>.</p>`,
		"tags": []string{"order"}, "metadata": map[string]string{"order_id": "1234"},
	})
	row := `document.querySelector('#message-rows a[href="/console/messages/` + id + `"]')`
	waitJS(t, ctx, 30*time.Second, "the new message in the list, without reloading", row+` !== null`)
	waitJS(t, ctx, 60*time.Second, "the message to reach sent in the list",
		row+`.closest('tr').querySelector('.status').textContent === 'sent'`)
	screenshot(t, ctx, "messages")

	do(t, ctx, chromedp.Click(css(`#message-rows a[href="/console/messages/`+id+`"]`)),
		chromedp.WaitVisible(css("ol.timeline")))
	timeline := get(t, ctx, chromedp.Text(css("ol.timeline")))
	for _, ev := range []string{"message.queued", "message.sent"} {
		if !strings.Contains(timeline, ev) {
			t.Errorf("timeline %q lacks %s", timeline, ev)
		}
	}
	if got := frameText(t, ctx, "#greeting"); got != "Thanks for your order" {
		t.Errorf("rendered HTML: #greeting is %q", got)
	}
	screenshot(t, ctx, "message")

	// Readable on a phone: at 390 CSS pixels wide (a phone's viewport)
	// neither page scrolls sideways (wide tables scroll in their own box).
	for _, page := range []string{"/console/messages/" + id, "/console/messages"} {
		do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
			chromedp.Navigate(g.URL+page), chromedp.WaitVisible(css("main")))
		if w := get(t, ctx, chromedp.Evaluate[int64](`document.documentElement.scrollWidth`)); w > 390 {
			t.Errorf("%s on a phone is %d px wide, wider than the screen's 390", page, w)
		}
	}
	screenshot(t, ctx, "messages-phone")
	do(t, ctx, chromedp.EmulateReset())

	// A scheduled message can be cancelled; its form, stripped of the
	// CSRF token, is refused, and nothing is cancelled.
	later := g.send(token, map[string]any{"from": "orders@shop.example", "to": []string{"bob@example.org"},
		"subject": "Later", "text": "x", "send_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages/"+later),
		chromedp.WaitVisible(css(`form[action$="/cancel"]`)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/cancel"] input[name="csrf_token"]').remove()`),
		chromedp.Click(css(`form[action$="/cancel"] button`)),
		chromedp.WaitVisible(css("p.error")))
	refused := get(t, ctx, chromedp.Text(css("p.error")))
	if !strings.Contains(refused, "security token") {
		t.Errorf("the form without its token: %q", refused)
	}
	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages/"+later),
		chromedp.WaitVisible(css(`form[action$="/cancel"]`)),
		chromedp.Click(css(`form[action$="/cancel"] button`)),
		chromedp.WaitVisible(css("p.notice")))
	status := get(t, ctx, chromedp.Text(css("dl.facts .status")))
	if status != "cancelled" {
		t.Errorf("after cancel with the token, status %q", status)
	}

	// Revoking the key (here with the CLI, through the revocation
	// broadcast) ends the session on its next request.
	g.command("keys", "revoke", keyID)
	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages"), chromedp.WaitVisible(css("#key")))
	loc := get(t, ctx, chromedp.Location())
	if !strings.HasSuffix(loc, "/console") {
		t.Errorf("after revoking the key, the list went to %s, want the sign-in page", loc)
	}
	tr.assertUntripped(t)
}

// frameText is the text of sel inside the message's sandboxed HTML
// frame. newBrowser keeps sandboxed frames in the page's process
// (IsolateSandboxedIframes off), so the frame's document is reachable
// from its element and shows in screenshots; the sandbox itself applies
// as always.
func frameText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	frames := get(t, ctx, chromedp.Nodes(css("iframe.html")))
	var text string
	waitFor(t, 10*time.Second, "the HTML frame's "+sel, func() bool {
		var err error
		text, err = chromedp.Run(ctx, chromedp.Text(css(sel), chromedp.FromNode(frames[0]), chromedp.AtLeast(0)))
		return err == nil && text != ""
	})
	return text
}
