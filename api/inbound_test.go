package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

type wireInbound struct {
	ID            string          `json:"id"`
	Mailbox       string          `json:"mailbox"`
	ReceivedAt    string          `json:"received_at"`
	Kind          string          `json:"kind"`
	Matched       bool            `json:"matched"`
	Authenticated bool            `json:"authenticated"`
	MessageID     *string         `json:"message_id"`
	Recipient     *string         `json:"recipient"`
	Results       json.RawMessage `json:"results"`
	FeedbackType  *string         `json:"feedback_type"`
	Reply         json.RawMessage `json:"reply"`
}

// bounceSummary is a stored report as package inbound writes it.
const bounceSummary = `{"kind":"bounce","results":[{"recipient":"ann@example.org","action":"failed",` +
	`"status":"5.1.1","reply_code":550,"diagnostic":"550 5.1.1 User unknown","reason":"userunknown","hard":true}],` +
	`"refs":{"verp_token":"x"}}`

// recordInbound stores rows as the poller would: a matched bounce of the
// default project's message (authenticated by its VERP token), a matched
// reply of another project's (by In-Reply-To: not authenticated), and an
// unmatched complaint.
func (e *testEnv) recordInbound(t *testing.T, ours, theirs acceptedBody, theirProject string) {
	t.Helper()
	recs := []store.InboundRecord{
		{ID: "0193a6f2-0000-7000-8000-000000000001", Mailbox: "bounces", MailboxMessageID: "1", Kind: "bounce",
			ProjectID: store.DefaultProjectID, MessageID: ours.ID, Recipient: "ann@example.org", Authenticated: true,
			Summary: json.RawMessage(bounceSummary), RawSize: 10},
		{ID: "0193a6f2-0000-7000-8000-000000000002", Mailbox: "replies", MailboxMessageID: "2", Kind: "reply",
			ProjectID: theirProject, MessageID: theirs.ID, Recipient: "ann@example.org",
			Summary: json.RawMessage(`{"kind":"reply","results":[],"refs":{},"reply":{"from":"ann@example.org","subject":"Re: x","text":"Thanks"}}`)},
		{ID: "0193a6f2-0000-7000-8000-000000000003", Mailbox: "bounces", MailboxMessageID: "3", Kind: "complaint",
			Summary: json.RawMessage(`{"kind":"complaint","results":[],"feedback_type":"abuse","refs":{}}`)},
	}
	for _, r := range recs {
		e.clock.Advance(time.Second)
		r.ReceivedAt = e.clock.Now()
		if _, err := e.store.RecordInbound(context.Background(), r); err != nil {
			t.Fatalf("record inbound: %v", err)
		}
	}
}

func TestListInbound(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		otherID := e.project("other")
		other := e.key(otherID, apikey.ScopeSend, apikey.ScopeRead)
		ours, theirs := e.send(t, e.sender, message()), e.send(t, other, message())
		e.recordInbound(t, ours, theirs, otherID)
		reader := e.key(store.DefaultProjectID, apikey.ScopeRead)
		cases := []struct {
			name, path, token string
			want              []string
		}{
			{"project key sees its matched rows", "/v1/inbound", reader, []string{"bounce"}},
			{"project key sees no unmatched rows", "/v1/inbound?matched=false", reader, nil},
			{"admin sees unmatched rows too", "/v1/inbound", e.admin, []string{"complaint", "bounce"}},
			{"admin unmatched", "/v1/inbound?matched=false", e.admin, []string{"complaint"}},
			{"admin matched", "/v1/inbound?matched=true", e.admin, []string{"bounce"}},
			{"kind", "/v1/inbound?kind=bounce", e.admin, []string{"bounce"}},
			{"other project", "/v1/inbound", other, []string{"reply"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.get(t, tc.path, tc.token)
				wantCode(t, r, http.StatusOK)
				var page wireList[wireInbound]
				r.decode(t, &page)
				var kinds []string
				for _, in := range page.Data {
					kinds = append(kinds, in.Kind)
				}
				if diff := cmp.Diff(tc.want, kinds); diff != "" {
					t.Errorf("kinds (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestListInboundRows(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	otherID := e.project("other")
	other := e.key(otherID, apikey.ScopeSend, apikey.ScopeRead)
	ours, theirs := e.send(t, e.sender, message()), e.send(t, other, message())
	e.recordInbound(t, ours, theirs, otherID)

	var page wireList[wireInbound]
	e.get(t, "/v1/inbound?limit=1", e.admin).decode(t, &page)
	if len(page.Data) != 1 || page.NextCursor == nil {
		t.Fatalf("first page %+v", page)
	}
	complaint := page.Data[0]
	abuse := "abuse"
	want := wireInbound{ID: "0193a6f2-0000-7000-8000-000000000003", Mailbox: "bounces",
		ReceivedAt: complaint.ReceivedAt, Kind: "complaint", Results: json.RawMessage(`[]`),
		FeedbackType: &abuse, Reply: json.RawMessage(`null`)}
	if diff := cmp.Diff(want, complaint); diff != "" {
		t.Errorf("unmatched row (-want +got):\n%s", diff)
	}
	e.get(t, "/v1/inbound?limit=1&cursor="+*page.NextCursor, e.admin).decode(t, &page)
	if len(page.Data) != 1 || page.NextCursor != nil {
		t.Fatalf("second page %+v", page)
	}
	b := page.Data[0]
	if b.MessageID == nil || *b.MessageID != ours.ID || b.Recipient == nil || *b.Recipient != "ann@example.org" ||
		!b.Matched || !b.Authenticated || b.FeedbackType != nil {
		t.Errorf("matched row %+v", b)
	}
	var results []map[string]any
	if err := json.Unmarshal(b.Results, &results); err != nil || len(results) != 1 || results[0]["reason"] != "userunknown" {
		t.Errorf("results %s (%v)", b.Results, err)
	}
	var replies wireList[wireInbound]
	e.get(t, "/v1/inbound?kind=reply", other).decode(t, &replies)
	if len(replies.Data) != 1 || string(replies.Data[0].Reply) != `{"from":"ann@example.org","subject":"Re: x","text":"Thanks"}` ||
		!replies.Data[0].Matched || replies.Data[0].Authenticated {
		t.Errorf("reply rows %+v", replies.Data)
	}
}

func TestListInboundBadQuery(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	for _, tc := range []struct{ path, field string }{
		{"/v1/inbound?matched=maybe", "query:matched"},
		{"/v1/inbound?kind=spam", "query:kind"},
		{"/v1/inbound?cursor=garbage", "query:cursor"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			wantProblem(t, e.get(t, tc.path, e.sender), http.StatusUnprocessableEntity, "validation", tc.field)
		})
	}
	noRead := e.key(store.DefaultProjectID, apikey.ScopeSend)
	wantCode(t, e.get(t, "/v1/inbound", noRead), http.StatusForbidden)
}
