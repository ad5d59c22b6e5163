package console

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mailgate/mailgate/store"
)

// Rate thresholds the overview marks, as fractions of messages sent.
const (
	// bounceLimit: sending services review an account whose bounce rate
	// reaches 5 % (Amazon SES, for one); mailbox providers read a high
	// bounce rate as a list not kept clean.
	bounceLimit = 0.05
	// complaintTarget and complaintLimit: Google's and Yahoo's sender
	// guidelines (2024) ask bulk senders to keep the spam complaint rate
	// below 0.1 % and never let it reach 0.3 %.
	complaintTarget = 0.001
	complaintLimit  = 0.003
)

// overviewView is the data of templates/overview.html.
type overviewView struct {
	// Window and Domain are the query as given; Errors names each bad
	// field (nothing else is shown then).
	Window, Domain string
	Errors         map[string]string
	// Windows are the window switcher's links; AllDomains is this
	// window's overview without the domain filter.
	Windows    []windowLink
	AllDomains string
	// Overview is the store's answer; Rows its domains with their rates,
	// Total their sum.
	Overview store.Overview
	Rows     []overviewRow
	Total    overviewRow
	// Bucket names Overview.Bucket ("minute", "hour").
	Bucket string
	// OldestAge is how long the oldest waiting message has waited.
	OldestAge string
	// Volume and Feedback are the charts' data, read by overview.js from
	// their data blocks.
	Volume, Feedback chartData
}

// windowLink is an entry of the window switcher.
type windowLink struct {
	Title, Href string
	Current     bool
}

// overviewRow is a domain's (or the total's) counts with its rates.
type overviewRow struct {
	Domain string
	store.Counts
	// Messages lists the domain's messages; Chart shows its overview.
	Messages, Chart   string
	Bounce, Complaint rate
}

// rate is a rate shown against its thresholds: Text the percentage ("—"
// with nothing sent), Level ok, warn, bad or none (a CSS class), Note
// what it passed.
type rate struct {
	Text, Level, Note string
}

// chartData is one chart's series, as overview.js draws them: X the
// buckets' starts (Unix seconds).
type chartData struct {
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string  `json:"label"`
	Values []int64 `json:"values"`
}

// overview is GET /console/overview: the project's sending over the last
// hour, day or week (window), for one sender domain (domain) or all,
// from the event counts the worker rolls up, with the queue's state.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	v := overviewView{Window: q.Get("window"), Errors: map[string]string{}}
	if v.Window == "" {
		v.Window = string(store.WindowDay)
	}
	window := store.Window(v.Window)
	if !window.Valid() {
		v.Errors["window"] = "must be hour, day or week"
	}
	v.Domain = formDomain(q.Get("domain"), "domain", v.Errors)
	v.Windows = windowLinks(window, v.Domain)
	v.AllDomains = overviewHref(window, "")
	if len(v.Errors) > 0 {
		return c.renderCode(w, r, req, http.StatusUnprocessableEntity, "overview.html", "Overview", v)
	}
	now := c.cfg.Now()
	o, err := c.deps.Store.Overview(r.Context(), req.ProjectID, window, v.Domain, now)
	if err != nil {
		return err
	}
	v.Overview = o
	for _, d := range o.Domains {
		v.Rows = append(v.Rows, newOverviewRow(d.Domain, d.Counts, window))
	}
	v.Total = newOverviewRow("", o.Total, window)
	v.Bucket = "hour"
	if o.Bucket == time.Minute {
		v.Bucket = "minute"
	}
	if o.Queue.Oldest != nil {
		v.OldestAge = age(now.Sub(*o.Queue.Oldest))
	}
	v.Volume, v.Feedback = charts(o.Series)
	return c.render(w, r, req, "overview.html", "Overview", v)
}

// windowLinks are the switcher's links, keeping the domain.
func windowLinks(current store.Window, domain string) []windowLink {
	titles := map[store.Window]string{store.WindowHour: "Last hour", store.WindowDay: "Last day",
		store.WindowWeek: "Last week"}
	var out []windowLink
	for _, w := range store.Windows() {
		out = append(out, windowLink{Title: titles[w], Href: overviewHref(w, domain), Current: w == current})
	}
	return out
}

// overviewHref is the overview's URL for window and domain.
func overviewHref(window store.Window, domain string) string {
	q := url.Values{"window": {string(window)}}
	if domain != "" {
		q.Set("domain", domain)
	}
	return "/console/overview?" + q.Encode()
}

// newOverviewRow is a row of the totals table; domain "" is the total.
func newOverviewRow(domain string, n store.Counts, window store.Window) overviewRow {
	row := overviewRow{Domain: domain, Counts: n,
		Bounce: rateOf(n.Bounced(), n.Sent, bounceLimit, bounceLimit), Complaint: rateOf(n.Complained, n.Sent,
			complaintTarget, complaintLimit)}
	if domain != "" {
		row.Messages = "/console/messages?" + url.Values{"from_domain": {domain}}.Encode()
		row.Chart = overviewHref(window, domain)
	}
	return row
}

// rateOf is part/sent against its thresholds: warn at or above target,
// bad at or above limit (one threshold: target == limit).
func rateOf(part, sent int64, target, limit float64) rate {
	if sent == 0 {
		return rate{Text: "—", Level: "none"}
	}
	f := float64(part) / float64(sent)
	out := rate{Text: fmt.Sprintf("%.2f %%", 100*f), Level: "ok"}
	switch {
	case f >= limit:
		out.Level, out.Note = "bad", fmt.Sprintf("at or above %s", percent(limit))
	case f >= target:
		out.Level, out.Note = "warn", fmt.Sprintf("at or above %s", percent(target))
	}
	return out
}

// percent writes a threshold: 0.05 is "5 %", 0.001 "0.1 %".
func percent(f float64) string {
	return fmt.Sprintf("%g %%", 100*f)
}

// age writes a duration as the queue's age: seconds, minutes, hours or
// days and hours.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// charts are the two charts' data: what was accepted and became of it,
// and what came back (bounces, complaints, replies).
func charts(series []store.Point) (volume, feedback chartData) {
	x := make([]int64, len(series))
	pick := func(f func(store.Counts) int64) []int64 {
		out := make([]int64, len(series))
		for i, p := range series {
			out[i] = f(p.Counts)
		}
		return out
	}
	for i, p := range series {
		x[i] = p.Start.Unix()
	}
	volume = chartData{X: x, Series: []chartSeries{
		{"accepted", pick(func(c store.Counts) int64 { return c.Accepted })},
		{"sent", pick(func(c store.Counts) int64 { return c.Sent })},
		{"deferred", pick(func(c store.Counts) int64 { return c.Deferred })},
		{"failed", pick(func(c store.Counts) int64 { return c.Failed })},
	}}
	feedback = chartData{X: x, Series: []chartSeries{
		{"bounced hard", pick(func(c store.Counts) int64 { return c.BouncedHard })},
		{"bounced soft", pick(func(c store.Counts) int64 { return c.BouncedSoft })},
		{"complained", pick(func(c store.Counts) int64 { return c.Complained })},
		{"replied", pick(func(c store.Counts) int64 { return c.Replied })},
	}}
	return volume, feedback
}
