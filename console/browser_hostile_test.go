package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/apikey"
)

// TestBrowserHostileContent sends a message whose every field carries
// script, event-handler, javascript: and CSS-injection payloads, each of
// which would call mgTrap, open a dialog or load the trap server, and
// checks that the list, the message page and the HTML frame show them
// without any running, and that the frame loads nothing remote.
func TestBrowserHostileContent(t *testing.T) {
	chromium(t)
	g := startGateway(t)
	_, token := g.createKey(apikey.ScopeSend, apikey.ScopeRead)
	tr := newTrap(t)
	ctx := newBrowser(t, tr)
	remote := tr.URL
	script := `<script>mgTrap('script')</script>`
	handler := `"><img src=x onerror="mgTrap('onerror')">`
	jsURL := `javascript:mgTrap('href')`
	cssInj := `</style><style>*{background:url(` + remote + `/css)}</style>`
	subject := script + handler + cssInj
	id := g.send(token, map[string]any{
		"from":    `"<svg onload=mgTrap('from')>" <orders@shop.example>`,
		"to":      []string{`"<img src=x onerror=alert(1)>" <ann@example.org>`},
		"subject": subject,
		"text":    script + handler + jsURL + cssInj,
		"html": script + `<img src="` + remote + `/img.png" onerror="mgTrap('img')">` +
			`<a id="js" href="` + jsURL + `">click</a>` +
			`<style>@import url(` + remote + `/import.css); body{background:url(` + remote + `/bg.png)}</style>` +
			`<link rel="stylesheet" href="` + remote + `/link.css">` +
			`<iframe src="` + remote + `/frame"></iframe>` +
			`<meta http-equiv="refresh" content="0;url=` + remote + `/refresh">` +
			`<form action="` + remote + `/form"><button id="go">go</button></form>` +
			`<svg><animate onbegin="mgTrap('svg')" attributeName="x" dur="1s"/></svg>` +
			`<p id="visible" style="color:red">Hostile HTML, inert</p>`,
		"tags":     []string{`<b onmouseover=mgTrap()>t`, jsURL},
		"metadata": map[string]string{`<script>k</script>`: handler, "css": cssInj, "url": jsURL},
		"headers":  map[string]string{"X-Hostile": script},
		"attachments": []map[string]string{{"filename": `<img src=x onerror=mgTrap('att')>.txt`,
			"content_type": "text/plain", "content": "aGk="}},
	})
	signInBrowser(t, ctx, g, token)
	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages"), chromedp.WaitVisible(css("#message-rows")))
	waitJS(t, ctx, 60*time.Second, "the hostile message to be sent",
		`(document.querySelector('#message-rows a[href="/console/messages/`+id+`"]')||{closest(){return null}}).closest('tr')?.querySelector('.status').textContent === 'sent'`)
	listed := get(t, ctx, chromedp.Text(css(`#message-rows a[href="/console/messages/`+id+`"]`)))
	if listed != subject {
		t.Errorf("the list shows the subject as %q, want it as text %q", listed, subject)
	}
	screenshot(t, ctx, "hostile-messages")

	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages/"+id), chromedp.WaitVisible(css("ol.timeline")))
	if got := get(t, ctx, chromedp.Text(css("h1"))); got != subject {
		t.Errorf("the message page shows the subject as %q", got)
	}
	if got := frameText(t, ctx, "#visible"); got != "Hostile HTML, inert" {
		t.Errorf("the HTML frame shows %q", got)
	}
	// Hover and focus what a user would touch, and click the frame's
	// javascript: link and form button: nothing may run or load.
	do(t, ctx, chromedp.Click(css("dl.facts .tag")))
	frames := get(t, ctx, chromedp.Nodes(css("iframe.html")))
	_ = chromedp.Do(ctx, chromedp.Click(css("#js"), chromedp.FromNode(frames[0])),
		chromedp.Click(css("#go"), chromedp.FromNode(frames[0])))
	screenshot(t, ctx, "hostile-message")

	// The HTML opened on its own, outside the frame, is as inert.
	do(t, ctx, chromedp.Navigate(g.URL+"/console/messages/"+id+"/html"), chromedp.WaitVisible(css("#visible")))
	_ = chromedp.Do(ctx, chromedp.Click(css("#js")))
	text := get(t, ctx, chromedp.Text(css("body")))
	if !strings.Contains(text, "Hostile HTML, inert") {
		t.Errorf("the HTML alone: %q", text)
	}
	tr.assertUntripped(t)
}
