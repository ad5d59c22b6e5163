package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// inboundPageSize is the number of received mails a page shows.
const inboundPageSize = 50

// inboundKinds are the kinds the list can filter by (package bounce's).
func inboundKinds() []string {
	return []string{"bounce", "delayed", "delivered", "complaint", "auto_reply", "reply", "unknown"}
}

// inboundSummary is the part of a received mail's stored report the
// pages show (package bounce's Report as JSON, and the parse error).
type inboundSummary struct {
	Results []struct {
		Recipient  string `json:"recipient"`
		Action     string `json:"action"`
		Status     string `json:"status"`
		ReplyCode  int    `json:"reply_code"`
		Diagnostic string `json:"diagnostic"`
	} `json:"results"`
	FeedbackType string `json:"feedback_type"`
	// Reply is a reply's sender, subject and text with the quoted
	// history and signature stripped.
	Reply *struct {
		From    string `json:"from"`
		Subject string `json:"subject"`
		Text    string `json:"text"`
	} `json:"reply"`
	Error string `json:"error"`
}

// inboundRow is one received mail with its summary decoded.
type inboundRow struct {
	store.Inbound
	Sum inboundSummary
}

func toInboundRow(in store.Inbound) inboundRow {
	row := inboundRow{Inbound: in}
	_ = json.Unmarshal(in.Summary, &row.Sum) // a damaged summary shows as empty
	return row
}

// inboundView is the data of templates/inbound.html.
type inboundView struct {
	Kind, Matched string
	Kinds         []string
	Rows          []inboundRow
	Next          string
	// Unmatched says the key sees mailbox mail tied to no message, which
	// belongs to no project (admin keys).
	Unmatched bool
}

// inboundFilter is what req may see: its project's rows, and for an admin
// key the rows of no project (as GET /v1/inbound).
func inboundFilter(req *request) store.InboundFilter {
	return store.InboundFilter{ProjectID: req.ProjectID, IncludeUnmatched: req.Can(apikey.ScopeAdmin)}
}

// inbound is GET /console/inbound: the project's bounces, complaints,
// replies and unmatched provider feedback and, for admin keys, mailbox
// mail of no project, newest first, filtered by kind and match.
func (c *Console) inbound(w http.ResponseWriter, r *http.Request, req *request) error {
	q := r.URL.Query()
	v := inboundView{Kinds: inboundKinds(), Kind: q.Get("kind"), Matched: q.Get("matched"), Unmatched: req.Can(apikey.ScopeAdmin)}
	f := inboundFilter(req)
	f.Page = store.Page{Limit: inboundPageSize, Cursor: q.Get("cursor")}
	if slices.Contains(v.Kinds, v.Kind) {
		f.Kind = v.Kind
	} else {
		v.Kind = ""
	}
	switch v.Matched {
	case "true", "false":
		m := v.Matched == "true"
		f.Matched = &m
	default:
		v.Matched = ""
	}
	list, next, err := c.deps.Store.ListInbound(r.Context(), f)
	if errors.Is(err, store.ErrBadCursor) {
		list, next, err = nil, "", nil
	}
	if err != nil {
		return err
	}
	for _, in := range list {
		v.Rows = append(v.Rows, toInboundRow(in))
	}
	if next != "" {
		v.Next = url.Values{"kind": {v.Kind}, "matched": {v.Matched}, "cursor": {next}}.Encode()
	}
	return c.render(w, r, req, "inbound.html", "Inbound", v)
}

// inboundOriginalView is the data of templates/inbound_original.html.
type inboundOriginalView struct {
	ID   string
	Head string
	Size int64
}

// inboundOriginal is GET /console/inbound/{id}/original: the kept start
// of the received mail as text.
func (c *Console) inboundOriginal(w http.ResponseWriter, r *http.Request, req *request) error {
	id := r.PathValue("id")
	head, size, err := c.deps.Store.InboundOriginal(r.Context(), inboundFilter(req), id)
	if errors.Is(err, store.ErrNotFound) {
		c.renderError(w, r, req, http.StatusNotFound, "There is no such received mail in this project.")
		return nil
	}
	if err != nil {
		return err
	}
	return c.render(w, r, req, "inbound_original.html", "Original mail",
		inboundOriginalView{ID: id, Head: string(head), Size: size})
}
