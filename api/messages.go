package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/store"
)

// Page sizes of list routes.
const (
	defaultPageSize = 50
	maxPageSize     = 100
)

// getMessage is GET /v1/messages/{id}: the message, its recipients and
// its events. Another project's message is a 404.
func (s *Server) getMessage(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.deps.Store.GetMessage(ctx, caller(c).ProjectID, c.Param("id"))
	if err != nil {
		return messageErr(err)
	}
	return s.messageWithEvents(c, m, http.StatusOK)
}

func (s *Server) messageWithEvents(c echo.Context, m store.Message, code int) error {
	events, err := s.deps.Store.MessageEvents(c.Request().Context(), m.ProjectID, m.ID)
	if err != nil {
		return err
	}
	v, err := toMessageDetailView(m, events)
	if err != nil {
		return err
	}
	return c.JSON(code, v)
}

func messageErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFoundProblem("message")
	}
	return err
}

// cancelMessage is POST /v1/messages/{id}/cancel: recipients not yet sent
// become cancelled and the pending task is removed (the worker re-checks
// statuses in any case).
func (s *Server) cancelMessage(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.CancelMessage(ctx, caller(c).ProjectID, c.Param("id"))
	if err != nil {
		return messageErr(err)
	}
	return s.messageWithEvents(c, m, http.StatusOK)
}

// listMessages is GET /v1/messages, newest first.
func (s *Server) listMessages(c echo.Context) error {
	q := c.QueryParams()
	page, err := pageParams(q)
	if err != nil {
		return err
	}
	since, until, err := timeRange(q)
	if err != nil {
		return err
	}
	f := store.MessageFilter{Status: q.Get("status"), Tag: q.Get("tag"),
		Recipient: strings.ToLower(q.Get("recipient")), Since: since, Until: until, Page: page}
	if v := q.Get("from_domain"); v != "" {
		name, msg := domainName(v)
		if msg != "" {
			return queryProblem("from_domain", msg)
		}
		f.FromDomain = name
	}
	msgs, next, err := s.deps.Store.ListMessages(c.Request().Context(), caller(c).ProjectID, f)
	if err != nil {
		return listErr(err)
	}
	out := listView[messageView]{Data: make([]messageView, len(msgs)), NextCursor: cursorPtr(next)}
	for i, m := range msgs {
		out.Data[i] = toMessageView(m)
	}
	return c.JSON(http.StatusOK, out)
}

// listEvents is GET /v1/events, newest first.
func (s *Server) listEvents(c echo.Context) error {
	q := c.QueryParams()
	page, err := pageParams(q)
	if err != nil {
		return err
	}
	since, until, err := timeRange(q)
	if err != nil {
		return err
	}
	f := store.EventFilter{Type: q.Get("type"), MessageID: q.Get("message_id"),
		Recipient: strings.ToLower(q.Get("recipient")), Since: since, Until: until, Page: page}
	events, next, err := s.deps.Store.ListEvents(c.Request().Context(), caller(c).ProjectID, f)
	if err != nil {
		return listErr(err)
	}
	out := listView[eventView]{Data: make([]eventView, len(events)), NextCursor: cursorPtr(next)}
	for i, e := range events {
		if out.Data[i], err = toEventView(e); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

func listErr(err error) error {
	if errors.Is(err, store.ErrBadCursor) {
		return queryProblem("cursor", "invalid cursor: pass next_cursor from the previous page unchanged")
	}
	return err
}

// queryField names a query parameter in a FieldError.
func queryField(name string) string { return "query:" + name }

func queryProblem(name, msg string) *Problem {
	p := validationProblem([]FieldError{{Field: queryField(name), Message: msg}})
	p.Detail = "the request has invalid parameters; see errors"
	return p
}

// pageParams reads limit (1..100, default 50) and cursor.
func pageParams(q url.Values) (store.Page, error) {
	p := store.Page{Limit: defaultPageSize, Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			return p, queryProblem("limit", "must be an integer from 1 to 100")
		}
		p.Limit = n
	}
	return p, nil
}

// timeRange reads since (inclusive) and until (exclusive), RFC 3339.
func timeRange(q url.Values) (since, until *time.Time, err error) {
	parse := func(name string) (*time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, queryProblem(name, dateTimeMessage(v))
		}
		return &t, nil
	}
	if since, err = parse("since"); err != nil {
		return nil, nil, err
	}
	until, err = parse("until")
	return since, until, err
}

// projectName is the metric label of a project; names never change, so
// they are cached.
func (s *Server) projectName(ctx context.Context, id string) string {
	if v, ok := s.projectNames.Load(id); ok {
		return v.(string)
	}
	p, err := s.deps.Store.ProjectByID(ctx, id)
	if err != nil {
		return "unknown"
	}
	s.projectNames.Store(id, p.Name)
	return p.Name
}
