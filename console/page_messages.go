package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/mailgate/mailgate/store"
)

// messagesPageSize is the number of messages a page of the list shows.
const messagesPageSize = 50

// messageStatuses are the statuses the list can filter by.
func messageStatuses() []string {
	return []string{store.StatusQueued, store.StatusScheduled, store.StatusSending,
		store.StatusDeferred, store.StatusSent, store.StatusPartial, store.StatusFailed, store.StatusBounced,
		store.StatusComplained, store.StatusSuppressed, store.StatusCancelled}
}

// messagesView is the data of templates/messages.html.
type messagesView struct {
	// Filter is the form as submitted; Statuses the choices of its status.
	Filter   messageFilterForm
	Statuses []string
	// Errors names each bad field of the filter.
	Errors   map[string]string
	Messages []store.Message
	// Next is the query of the next (older) page; "" on the last.
	Next string
	// Poll is the URL the list refreshes its rows from ("" on a page
	// other than the first: older pages do not change), and PollEvery
	// its period for htmx ("every 5s").
	Poll, PollEvery string
}

// messageFilterForm is the list's filter as typed in.
type messageFilterForm struct {
	Recipient, Status, Tag, FromDomain, Since, Until, Cursor string
}

// messages is GET /console/messages: the project's messages, newest first,
// filtered by recipient, status, tag, sender domain and time, paged by cursor. With
// JavaScript, the first page refreshes itself every PollInterval.
func (c *Console) messages(w http.ResponseWriter, r *http.Request, req *request) error {
	v, err := c.messageList(r, req)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if len(v.Errors) > 0 {
		code = http.StatusUnprocessableEntity
	}
	return c.renderCode(w, r, req, code, "messages.html", "Messages", v)
}

// messageRows is GET /console/messages/rows: the list's rows alone, for
// the htmx refresh.
func (c *Console) messageRows(w http.ResponseWriter, r *http.Request, req *request) error {
	v, err := c.messageList(r, req)
	if err != nil {
		return err
	}
	return c.renderFragment(w, "messages.html", "rows", v)
}

func (c *Console) messageList(r *http.Request, req *request) (messagesView, error) {
	q := r.URL.Query()
	form := messageFilterForm{Recipient: strings.TrimSpace(q.Get("recipient")), Status: q.Get("status"),
		Tag: strings.TrimSpace(q.Get("tag")), FromDomain: strings.TrimSpace(q.Get("from_domain")),
		Since: q.Get("since"), Until: q.Get("until"), Cursor: q.Get("cursor")}
	v := messagesView{Filter: form, Statuses: messageStatuses(), Errors: map[string]string{},
		PollEvery: "every " + c.cfg.PollInterval.String()}
	f := store.MessageFilter{Recipient: strings.ToLower(form.Recipient), Tag: form.Tag,
		Page: store.Page{Limit: messagesPageSize, Cursor: form.Cursor}}
	if form.Status != "" && !slices.Contains(v.Statuses, form.Status) {
		v.Errors["status"] = "not a known status"
	}
	f.Status = form.Status
	f.FromDomain = formDomain(form.FromDomain, "from_domain", v.Errors)
	f.Since, f.Until = formTime(form.Since, "since", v.Errors), formTime(form.Until, "until", v.Errors)
	if len(v.Errors) > 0 {
		return v, nil
	}
	msgs, next, err := c.deps.Store.ListMessages(r.Context(), req.ProjectID, f)
	if errors.Is(err, store.ErrBadCursor) {
		v.Errors["cursor"] = "not a cursor of this list: start from the first page"
		return v, nil
	}
	if err != nil {
		return v, err
	}
	v.Messages = msgs
	if next != "" {
		v.Next = form.query(next)
	}
	if form.Cursor == "" {
		v.Poll = "/console/messages/rows?" + form.query("")
	}
	return v, nil
}

// query is the form as a query string, with cursor.
func (f messageFilterForm) query(cursor string) string {
	q := url.Values{}
	for k, v := range map[string]string{"recipient": f.Recipient, "status": f.Status, "tag": f.Tag,
		"from_domain": f.FromDomain, "since": f.Since, "until": f.Until, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

// formDomain reads a domain name field as the store keeps sender domains:
// lower case, in A-label form (an IDN is converted); a bad one is noted
// in errs under name.
func formDomain(s, name string, errs map[string]string) string {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" {
		return ""
	}
	ascii, err := idna.Lookup.ToASCII(s)
	if err != nil || len(ascii) > 253 {
		errs[name] = "not a domain name such as shop.example"
		return ""
	}
	return strings.ToLower(ascii)
}

// formTime reads a time field: a browser's datetime-local value, taken
// as UTC, or RFC 3339; a bad one is noted in errs under name.
func formTime(s, name string, errs map[string]string) *time.Time {
	if s == "" {
		return nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return &t
		}
	}
	errs[name] = "not a time: use YYYY-MM-DDTHH:MM (UTC)"
	return nil
}
