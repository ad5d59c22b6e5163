package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// otherProject makes a project "other" with a key holding every message
// scope, and returns the key.
func (e *testEnv) otherProject() string {
	return e.key(e.project("other"), apikey.ScopeSend, apikey.ScopeRead, apikey.ScopeSuppressions)
}

func TestReadMessageNotFound(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		other := e.otherProject()
		theirs := e.send(t, other, message())
		cases := map[string]string{
			"unknown id":               "/v1/messages/0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65",
			"id of another shape":      "/v1/messages/not-a-uuid",
			"another project's id":     "/v1/messages/" + theirs.ID,
			"another project's cancel": "/v1/messages/" + theirs.ID + "/cancel",
		}
		for name, path := range cases {
			t.Run(name, func(t *testing.T) {
				method := http.MethodGet
				if name == "another project's cancel" {
					method = http.MethodPost
				}
				r := e.do(t, request{Method: method, Path: path, Token: e.sender})
				wantProblem(t, r, http.StatusNotFound, "not-found")
			})
		}
		var evs wireList[wireEvent]
		e.get(t, "/v1/events?message_id="+theirs.ID, e.sender).decode(t, &evs)
		if len(evs.Data) != 0 {
			t.Errorf("another project's events are visible: %+v", evs.Data)
		}
		if m := e.getMessage(t, other, theirs.ID); m.Status != store.StatusQueued {
			t.Errorf("the owner sees status %q after another project's cancel, want queued", m.Status)
		}
	})
}

// ids lists a page's message ids.
func ids(list []wireMessage) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = m.ID
	}
	return out
}

func (e *testEnv) listIDs(t *testing.T, query string) []string {
	t.Helper()
	r := e.get(t, "/v1/messages?"+query, e.sender)
	wantCode(t, r, http.StatusOK)
	var list wireList[wireMessage]
	r.decode(t, &list)
	return ids(list.Data)
}

func TestReadListFilters(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		t0 := e.clock.Now()
		a := e.send(t, e.sender, with(message(), "tags", []string{"alpha"}))
		e.clock.Advance(time.Hour)
		b := e.send(t, e.sender, with(message(), "to", []string{"Zed <zed@example.org>"},
			"send_at", e.clock.Now().Add(time.Hour).Format(time.RFC3339)))
		e.clock.Advance(time.Hour)
		wantCode(t, e.post(t, "/v1/suppressions", e.sender, map[string]any{"email": "gone@example.org"}), http.StatusCreated)
		c := e.send(t, e.sender, with(message(), "to", []string{"gone@example.org"}, "tags", []string{"alpha", "beta"}))
		hour := func(n int) string { return url.QueryEscape(t0.Add(time.Duration(n) * time.Hour).Format(time.RFC3339)) }
		cases := []struct {
			query string
			want  []string
		}{
			{"", []string{c.ID, b.ID, a.ID}},
			{"status=scheduled", []string{b.ID}},
			{"status=suppressed", []string{c.ID}},
			{"status=queued", []string{a.ID}},
			{"tag=alpha", []string{c.ID, a.ID}},
			{"tag=beta", []string{c.ID}},
			{"tag=none", []string{}},
			{"recipient=ZED@example.org", []string{b.ID}},
			{"since=" + hour(1), []string{c.ID, b.ID}},
			{"until=" + hour(1), []string{a.ID}},
			{"since=" + hour(1) + "&until=" + hour(2), []string{b.ID}},
			{"tag=alpha&since=" + hour(1), []string{c.ID}},
			{"from_domain=SHOP.example", []string{c.ID, b.ID, a.ID}},
			{"from_domain=news.example", []string{}},
			{"from_domain=shop.example&tag=beta", []string{c.ID}},
		}
		for _, tc := range cases {
			t.Run(tc.query, func(t *testing.T) {
				if d := cmp.Diff(tc.want, e.listIDs(t, tc.query), cmpopts.EquateEmpty()); d != "" {
					t.Errorf("ids (-want +got):\n%s", d)
				}
			})
		}
	})
}

func TestReadPagination(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		var sent []string
		for range 3 {
			items := make([]any, 40)
			for i := range items {
				items[i] = message()
			}
			var b batchBody
			r := e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": items})
			wantCode(t, r, http.StatusOK)
			r.decode(t, &b)
			for _, res := range b.Results {
				sent = append(sent, res.ID)
			}
			e.clock.Advance(time.Second)
		}
		var got []string
		var sizes []int
		cursor := ""
		for page := 0; page < 5; page++ {
			q := "limit=50"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			var list wireList[wireMessage]
			r := e.get(t, "/v1/messages?"+q, e.sender)
			wantCode(t, r, http.StatusOK)
			r.decode(t, &list)
			got = append(got, ids(list.Data)...)
			sizes = append(sizes, len(list.Data))
			if list.NextCursor == nil {
				break
			}
			cursor = *list.NextCursor
		}
		if d := cmp.Diff([]int{50, 50, 20}, sizes); d != "" {
			t.Errorf("page sizes (-want +got):\n%s", d)
		}
		sortedGot := slices.Sorted(slices.Values(got))
		if d := cmp.Diff(slices.Sorted(slices.Values(sent)), sortedGot); d != "" {
			t.Errorf("pages do not hold every message once (-want +got):\n%s", d)
		}
		if len(got) == 120 && (!slices.Contains(got[:40], sent[119]) || !slices.Contains(got[80:], sent[0])) {
			t.Error("pages are not newest first")
		}
	})
}

func TestReadListRefusesBadParameters(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := []struct{ path, field string }{
		{"/v1/messages?cursor=garbage", "query:cursor"},
		{"/v1/messages?cursor=eyJ4IjoxfQ", "query:cursor"},
		{"/v1/messages?limit=0", "query:limit"},
		{"/v1/messages?limit=101", "query:limit"},
		{"/v1/messages?limit=ten", "query:limit"},
		{"/v1/messages?since=yesterday", "query:since"},
		{"/v1/messages?status=lost", "query:status"},
		{"/v1/messages?from_domain=not_a_domain!", "query:from_domain"},
		{"/v1/messages?from_domain=" + strings.Repeat("a", 250) + ".example", "query:from_domain"},
		{"/v1/events?cursor=garbage", "query:cursor"},
		{"/v1/events?limit=101", "query:limit"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			r := e.get(t, tc.path, e.sender)
			if r.Code < 400 || r.Code > 499 {
				t.Fatalf("status %d, want 4xx; body %s", r.Code, r.Body)
			}
			if p := r.problem(t); !p.hasField(tc.field) {
				t.Errorf("errors %v do not name %q", p.fields(), tc.field)
			}
		})
	}
}

// TestReadTimeFilterPlusHint checks that a time filter whose offset's "+"
// arrived as a space (sent unencoded in the query) is refused with a hint
// to encode it, and that the encoded form is accepted.
func TestReadTimeFilterPlusHint(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	for _, path := range []string{"/v1/messages", "/v1/events"} {
		t.Run(path, func(t *testing.T) {
			for _, name := range []string{"since", "until"} {
				r := e.get(t, path+"?"+name+"=2026-12-01T09:00:00+01:00", e.sender)
				p := wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "query:"+name)
				if len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Message, "%2B") {
					t.Errorf("errors %+v give no hint to send + as %%2B", p.Errors)
				}
				wantCode(t, e.get(t, path+"?"+name+"=2026-12-01T09:00:00%2B01:00", e.sender), http.StatusOK)
			}
		})
	}
}

func TestReadEvents(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		a := e.send(t, e.sender, with(message(), "to", []string{"a1@example.org", "a2@example.org", "a3@example.org"}))
		b := e.send(t, e.sender, message())
		var page wireList[wireEvent]
		r := e.get(t, "/v1/events?message_id="+a.ID+"&limit=2", e.sender)
		wantCode(t, r, http.StatusOK)
		r.decode(t, &page)
		if len(page.Data) != 2 || page.NextCursor == nil {
			t.Fatalf("first page %+v, want 2 events and a cursor", page)
		}
		var rest wireList[wireEvent]
		e.get(t, "/v1/events?message_id="+a.ID+"&limit=2&cursor="+url.QueryEscape(*page.NextCursor), e.sender).decode(t, &rest)
		if len(rest.Data) != 1 || rest.NextCursor != nil {
			t.Fatalf("last page %+v, want 1 event and no cursor", rest)
		}
		var recipients []string
		for _, ev := range append(page.Data, rest.Data...) {
			if ev.MessageID != a.ID || ev.Type != store.EventQueued {
				t.Errorf("event %+v is not a queued event of %s", ev, a.ID)
			}
			recipients = append(recipients, ev.Recipient)
		}
		slices.Sort(recipients)
		if d := cmp.Diff([]string{"a1@example.org", "a2@example.org", "a3@example.org"}, recipients); d != "" {
			t.Errorf("recipients (-want +got):\n%s", d)
		}
		var all wireList[wireEvent]
		e.get(t, "/v1/events", e.sender).decode(t, &all)
		if len(all.Data) != 4 || all.Data[0].MessageID != b.ID || all.NextCursor != nil {
			t.Errorf("all events %+v, want 4, newest (%s) first", all, b.ID)
		}
	})
}

func TestCancel(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		at := e.clock.Now().Add(48 * time.Hour).Format(time.RFC3339)
		sched := e.send(t, e.sender, with(message(), "send_at", at, "to", []string{"a@example.org", "b@example.org"}))
		queued := e.send(t, e.sender, message())
		wantTask(t, e, sched.ID, asynq.TaskStateScheduled)

		for _, id := range []string{sched.ID, queued.ID} {
			r := e.post(t, "/v1/messages/"+id+"/cancel", e.sender, nil)
			wantCode(t, r, http.StatusOK)
			var m wireMessage
			r.decode(t, &m)
			if m.Status != store.StatusCancelled {
				t.Errorf("status %q, want cancelled", m.Status)
			}
			for _, rc := range m.Recipients {
				if rc.Status != store.StatusCancelled {
					t.Errorf("recipient %s is %q, want cancelled", rc.Email, rc.Status)
				}
			}
			n := 0
			for _, ev := range e.getMessage(t, e.sender, id).Events {
				if ev.Type == store.EventCancelled {
					n++
				}
			}
			if n != len(m.Recipients) {
				t.Errorf("%d message.cancelled events, want %d", n, len(m.Recipients))
			}
			if e.task(t, id) != nil {
				t.Errorf("the task of cancelled message %s is still in Redis", id)
			}
			wantProblem(t, e.post(t, "/v1/messages/"+id+"/cancel", e.sender, nil), http.StatusConflict, "not-cancellable")
		}
	})
}
