package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/console"
)

// acceptedOf is the accepted count of domain's row in the overview's
// totals table, or "" without such a row.
func acceptedOf(page, domain string) string {
	re := regexp.MustCompile(`(?s)<tr>\s*<th scope="row"><a href="/console/messages\?from_domain=` +
		regexp.QuoteMeta(domain) + `".*?</th>\s*<td>(\d+)</td>`)
	if m := re.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// TestOverviewPage: the overview is the first page after sign-in; it
// shows the project's rolled-up counts per sender domain (never another
// project's), the rates against their thresholds, the queue and the
// charts' data as JSON a browser does not run; a bad window or domain is
// refused naming the field.
func TestOverviewPage(t *testing.T) {
	e := newEnv(t, console.Config{})
	ctx := context.Background()
	_, token := e.key(apikey.ScopeSend, apikey.ScopeRead)
	other, err := e.store.CreateProject(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	_, theirs := e.projectKey(other.ID, apikey.ScopeSend)
	msg := `{"from":"a@shop.example","to":["b@example.org","c@example.org"],"subject":"s","text":"x"}`
	e.sendMessage(token, msg)
	for range 3 {
		e.sendMessage(theirs, msg)
	}
	if _, err := e.store.RollUpEvents(ctx, e.clock.Now().Add(time.Minute), 1000); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(token)
	if home := b.get("/console"); home.header.Get("Location") != "/console/overview" {
		t.Errorf("home: %d to %q, want /console/overview", home.code, home.header.Get("Location"))
	}
	page := b.get("/console/overview?window=hour")
	if page.code != http.StatusOK {
		t.Fatalf("overview: %d\n%s", page.code, page.body)
	}
	if got := acceptedOf(page.body, "shop.example"); got != "2" {
		t.Errorf("shop.example accepted %q, want 2 (this project's two recipients, none of the other's six)", got)
	}
	for _, want := range []string{`<a href="/console/overview" aria-current="page">Overview</a>`,
		`href="/console/overview?domain=shop.example&amp;window=hour">chart</a>`,
		`<td class="rate rate-none">—</td>`, "Google", "0.3 %", `id="queue"`, "Counts as of",
		`<script type="application/json" id="chart-volume">`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the overview lacks %s", want)
		}
	}
	if nav := strings.Index(page.body, `href="/console/overview"`); nav < 0 || nav > strings.Index(page.body, `href="/console/messages"`) {
		t.Error("Overview is not the menu's first entry")
	}
	block := regexp.MustCompile(`(?s)<script type="application/json" id="chart-volume">(.*?)</script>`).FindStringSubmatch(page.body)
	var chart struct {
		X      []int64 `json:"x"`
		Series []struct {
			Label  string  `json:"label"`
			Values []int64 `json:"values"`
		} `json:"series"`
	}
	if block == nil || json.Unmarshal([]byte(block[1]), &chart) != nil || len(chart.X) != 60 || len(chart.Series) != 4 {
		t.Errorf("the volume chart's data block does not hold 60 minutes of 4 series: %v", block)
	} else if v := chart.Series[0].Values; chart.Series[0].Label != "accepted" || v[len(v)-1] != 2 {
		t.Errorf("accepted series %s %v, want 2 in the last minute", chart.Series[0].Label, v)
	}

	one := b.get("/console/overview?window=week&domain=Shop.Example")
	if one.code != http.StatusOK || !strings.Contains(one.body, "Overview of shop.example") {
		t.Errorf("one domain: %d, want its overview", one.code)
	}
	for _, tc := range []struct{ query, field string }{
		{"window=month", "window"},
		{"domain=not_a_domain!", "domain"},
	} {
		r := b.get("/console/overview?" + tc.query)
		if r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "<strong>"+tc.field+"</strong>") {
			t.Errorf("%s: %d, want 422 naming %s", tc.query, r.code, tc.field)
		}
	}

	list := b.get("/console/messages?from_domain=SHOP.example")
	if list.code != http.StatusOK || !strings.Contains(list.body, "b@example.org") ||
		!strings.Contains(list.body, `name="from_domain" value="SHOP.example"`) {
		t.Errorf("messages from shop.example: %d\n%s", list.code, list.body)
	}
	if none := b.get("/console/messages?from_domain=news.example"); strings.Contains(none.body, "b@example.org") {
		t.Error("the list filtered by news.example shows shop.example's message")
	}
}
