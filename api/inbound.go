package api

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// inboundKinds are the values of the kind filter (package bounce's kinds).
var inboundKinds = []string{"bounce", "delayed", "delivered", "complaint", "auto_reply", "reply", "unknown"}

func (s *Server) inboundRoutes(g *echo.Group) {
	g.GET("/inbound", s.listInbound, s.requireScope(scopeRead))
}

// listInbound is GET /v1/inbound, newest first. A key sees its project's
// rows (matched ones and its provider feedback tied to no message); an
// admin key also sees every row of no project (mailbox mail tied to no
// message; openapi.yaml documents this).
func (s *Server) listInbound(c echo.Context) error {
	q := c.QueryParams()
	page, err := pageParams(q)
	if err != nil {
		return err
	}
	key := caller(c)
	f := store.InboundFilter{ProjectID: key.ProjectID, Page: page,
		IncludeUnmatched: apikey.HasScope(key.Scopes, scopeAdmin)}
	switch q.Get("matched") {
	case "":
	case "true", "false":
		v := q.Get("matched") == "true"
		f.Matched = &v
	default:
		return queryProblem("matched", "must be true or false")
	}
	if k := q.Get("kind"); k != "" {
		if !slices.Contains(inboundKinds, k) {
			return queryProblem("kind", "must be one of bounce, delayed, delivered, complaint, auto_reply, reply, unknown")
		}
		f.Kind = k
	}
	list, next, err := s.deps.Store.ListInbound(c.Request().Context(), f)
	if err != nil {
		return listErr(err)
	}
	out := listView[inboundView]{Data: make([]inboundView, len(list)), NextCursor: cursorPtr(next)}
	for i, in := range list {
		out.Data[i] = toInboundView(in)
	}
	return c.JSON(http.StatusOK, out)
}

type inboundView struct {
	ID         string `json:"id"`
	Mailbox    string `json:"mailbox"`
	ReceivedAt string `json:"received_at"`
	Kind       string `json:"kind"`
	Matched    bool   `json:"matched"`
	// Authenticated is true when a VERP token named the recipient: only
	// then did the mail change the recipient's status or suppressions.
	Authenticated bool            `json:"authenticated"`
	MessageID     *string         `json:"message_id"`
	Recipient     *string         `json:"recipient"`
	Results       json.RawMessage `json:"results"`
	FeedbackType  *string         `json:"feedback_type"`
	Reply         json.RawMessage `json:"reply"`
}

// inboundSummary is the part of the stored report the API shows.
type inboundSummary struct {
	Results      json.RawMessage `json:"results"`
	FeedbackType string          `json:"feedback_type"`
	Reply        json.RawMessage `json:"reply"`
}

func toInboundView(in store.Inbound) inboundView {
	var sum inboundSummary
	_ = json.Unmarshal(in.Summary, &sum) // a damaged summary shows as empty
	v := inboundView{ID: in.ID, Mailbox: in.Mailbox, ReceivedAt: timeString(in.ReceivedAt), Kind: in.Kind,
		Matched: in.Matched, Authenticated: in.Authenticated, MessageID: optString(in.MessageID), Recipient: optString(in.Recipient),
		Results: sum.Results, FeedbackType: optString(sum.FeedbackType), Reply: sum.Reply}
	if len(v.Results) == 0 || string(v.Results) == "null" {
		v.Results = json.RawMessage(`[]`)
	}
	if len(v.Reply) == 0 {
		v.Reply = json.RawMessage(`null`)
	}
	return v
}

// optString is nil for "".
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
