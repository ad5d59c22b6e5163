package main

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// operator is a browser signed in to the console: a cookie jar, and the
// same-origin header a browser sends.
type operator struct {
	base string
	http *http.Client
}

// newOperator is a client of the console at base ("http://host:port").
func newOperator(base string) *operator {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &operator{base: base, http: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// reply is a finished request.
type reply struct {
	code int
	body string
	took time.Duration
}

// get fetches path; htmx marks the request as the page's own refresh.
func (o *operator) get(ctx context.Context, path string, htmx bool) (reply, error) {
	return o.do(ctx, http.MethodGet, path, nil, htmx)
}

func (o *operator) do(ctx context.Context, method, path string, form url.Values, htmx bool) (reply, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, o.base+path, body)
	if err != nil {
		return reply{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	start := time.Now()
	resp, err := o.http.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return reply{code: resp.StatusCode, body: string(b), took: time.Since(start)}, nil
}

var (
	csrfField   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	messageLink = regexp.MustCompile(`href="/console/messages/([0-9a-f-]{36})"`)
	nextLink    = regexp.MustCompile(`href="(/console/messages\?[^"]+)" rel="next"`)
)

// signIn signs in with an API token as the sign-in form does.
func (o *operator) signIn(ctx context.Context, token string) error {
	page, err := o.get(ctx, "/console", false)
	if err != nil {
		return err
	}
	m := csrfField.FindStringSubmatch(page.body)
	if m == nil {
		return fmt.Errorf("GET /console (%d) shows no sign-in form", page.code)
	}
	r, err := o.do(ctx, http.MethodPost, "/console/sign-in", url.Values{"csrf_token": {m[1]}, "key": {token}}, false)
	if err != nil {
		return err
	}
	if r.code != http.StatusSeeOther {
		return fmt.Errorf("sign-in answered %d, want 303", r.code)
	}
	return nil
}

// page is one URL the operator opens; HTMX marks the list's refresh.
type page struct {
	name, path string
	htmx       bool
}

// pages are the console pages measured and browsed: those of the list
// (next is its second page), the message page of messageID and the
// overview. The time range is an hour three days before now.
func pages(now time.Time, next, messageID string) []page {
	until := now.Add(-72 * time.Hour).UTC()
	since := until.Add(-time.Hour)
	rangeQuery := url.Values{"since": {since.Format("2006-01-02T15:04")}, "until": {until.Format("2006-01-02T15:04")}}
	return []page{
		{name: "list, first page", path: "/console/messages"},
		{name: "list, second page", path: next},
		{name: "rows refresh (htmx)", path: "/console/messages/rows", htmx: true},
		{name: "status=failed", path: "/console/messages?status=failed"},
		{name: "status=queued", path: "/console/messages?status=queued"},
		{name: "status=complained", path: "/console/messages?status=complained"},
		{name: "status=cancelled (none)", path: "/console/messages?status=cancelled"},
		{name: "tag=" + busyTag, path: "/console/messages?tag=" + busyTag},
		{name: "tag=" + rareTag, path: "/console/messages?tag=" + rareTag},
		{name: "recipient, a person", path: "/console/messages?" + url.Values{"recipient": {personRecipient}}.Encode()},
		{name: "recipient, the archive", path: "/console/messages?" + url.Values{"recipient": {archiveRecipient}}.Encode()},
		{name: "from_domain=" + smallDomain, path: "/console/messages?from_domain=" + smallDomain},
		{name: "time range, 1 h", path: "/console/messages?" + rangeQuery.Encode()},
		{name: "message page", path: "/console/messages/" + messageID},
		{name: "overview, hour", path: "/console/overview?window=hour"},
		{name: "overview, day", path: "/console/overview?window=day"},
		{name: "overview, week", path: "/console/overview?window=week"},
	}
}

// discover reads, from the list, the path of its second page and the id
// of the newest bounced message (one with a longer history).
func (o *operator) discover(ctx context.Context) (next, messageID string, err error) {
	r, err := o.get(ctx, "/console/messages", false)
	if err != nil {
		return "", "", err
	}
	n := nextLink.FindStringSubmatch(r.body)
	if n == nil {
		return "", "", fmt.Errorf("GET /console/messages (%d) links no second page", r.code)
	}
	if r, err = o.get(ctx, "/console/messages?status=bounced", false); err != nil {
		return "", "", err
	}
	m := messageLink.FindStringSubmatch(r.body)
	if m == nil {
		return "", "", fmt.Errorf("GET /console/messages?status=bounced (%d) links no message", r.code)
	}
	return html.UnescapeString(n[1]), m[1], nil
}
