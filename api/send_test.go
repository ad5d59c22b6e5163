package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// eventSummary is what tests compare of an event.
type eventSummary struct{ Type, Recipient string }

func summarize(events []wireEvent) []eventSummary {
	out := make([]eventSummary, len(events))
	for i, ev := range events {
		out[i] = eventSummary{ev.Type, ev.Recipient}
	}
	return out
}

func TestSendHappyPath(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		a := e.send(t, e.sender, fixture(t, "typical.json"))
		want := acceptedBody{ID: a.ID, Status: store.StatusQueued, Recipients: []wireRecipient{
			{Email: "ann@example.org", Status: "queued"}, {Email: "bob@example.net", Status: "queued"},
			{Email: "carol@example.com", Status: "queued"}, {Email: "dave@example.com", Status: "queued"},
		}}
		if d := cmp.Diff(want, a); d != "" {
			t.Errorf("202 body (-want +got):\n%s", d)
		}

		m := e.getMessage(t, e.sender, a.ID)
		var got []recipientSummary
		for _, r := range m.Recipients {
			got = append(got, recipientSummary{r.Email, r.Kind, r.Status})
		}
		wantRcpts := []recipientSummary{{"ann@example.org", "to", "queued"}, {"bob@example.net", "to", "queued"},
			{"carol@example.com", "cc", "queued"}, {"dave@example.com", "bcc", "queued"}}
		if d := cmp.Diff(wantRcpts, got); d != "" {
			t.Errorf("recipients (-want +got):\n%s", d)
		}
		wantEvents := []eventSummary{{store.EventQueued, "ann@example.org"}, {store.EventQueued, "bob@example.net"},
			{store.EventQueued, "carol@example.com"}, {store.EventQueued, "dave@example.com"}}
		if d := cmp.Diff(wantEvents, summarize(m.Events)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
		if m.Status != store.StatusQueued || m.Subject != "Your order #1234 has shipped" ||
			!cmp.Equal(m.Tags, []string{"order", "shipping"}) || m.Metadata["order_id"] != "1234" {
			t.Errorf("message = %+v", m)
		}
		wantTask(t, e, a.ID, asynq.TaskStatePending)
	})
}

type recipientSummary struct{ Email, Kind, Status string }

// wantTask checks that the message's send task exists in the state with
// the id as its only payload.
func wantTask(t *testing.T, e *testEnv, id string, states ...asynq.TaskState) *asynq.TaskInfo {
	t.Helper()
	info, err := e.inspector().GetTaskInfo(queue.QueueSend, id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	var p map[string]any
	if err := json.Unmarshal(info.Payload, &p); err != nil {
		t.Fatalf("payload %s: %v", info.Payload, err)
	}
	if d := cmp.Diff(map[string]any{"message_id": id}, p); d != "" {
		t.Errorf("payload (-want +got):\n%s", d)
	}
	if info.Type != queue.TypeSend || !slices.Contains(states, info.State) {
		t.Errorf("task type %q state %v, want %q %v", info.Type, info.State, queue.TypeSend, states)
	}
	return info
}

// wantBatchTask fails unless the batch send task id exists, pending, for
// exactly ids, and none of ids has a task of its own.
func wantBatchTask(t *testing.T, e *testEnv, id string, ids ...string) {
	t.Helper()
	info, err := e.inspector().GetTaskInfo(queue.QueueSend, id)
	if err != nil {
		t.Fatalf("batch task %s: %v", id, err)
	}
	p, err := queue.ParseSendBatchPayload(info.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ids, p.MessageIDs); d != "" || info.Type != queue.TypeSendBatch || info.State != asynq.TaskStatePending {
		t.Errorf("batch task %s %v, message ids (-want +got):\n%s", info.Type, info.State, d)
	}
	for _, m := range ids {
		if e.task(t, m) != nil {
			t.Errorf("message %s of a batch has a task of its own", m)
		}
	}
}

// invalidCase is one request the API must refuse.
type invalidCase struct {
	name  string
	body  any
	code  int
	slug  string
	field string // a JSON pointer errors[] must name; "" for none
}

func invalidCases(t *testing.T, now time.Time) []invalidCase {
	m := message()
	att := func(kv ...any) map[string]any {
		return with(map[string]any{"filename": "a.txt", "content_type": "text/plain", "content": "aGk="}, kv...)
	}
	long := strings.Repeat
	manyKeys := metadataKeys(51)
	return []invalidCase{
		{"malformed unterminated", fixture(t, "malformed_unterminated.json"), 400, "malformed", ""},
		{"malformed trailing comma", fixture(t, "malformed_comma.json"), 400, "malformed", ""},
		{"malformed trailing value", fixture(t, "malformed_trailing.json"), 400, "malformed", ""},
		{"empty body", []byte(""), 400, "malformed", ""},
		{"not an object", []byte(`["x"]`), 422, "validation", ""},
		{"unknown field", with(m, "bogus", 1), 422, "validation", "/bogus"},
		{"to is a string", with(m, "to", "ann@example.org"), 422, "validation", "/to"},
		{"subject is a number", with(m, "subject", 12), 422, "validation", "/subject"},
		{"tags hold a number", with(m, "tags", []any{1}), 422, "validation", "/tags/0"},
		{"from missing", with(m, "from", ""), 422, "validation", "/from"},
		{"bad address", with(m, "to", []string{"not an address"}), 422, "validation", "/to/0"},
		{"bad cc address", with(m, "cc", []string{"a@@example.org"}), 422, "validation", "/cc/0"},
		{"local part 65", with(m, "to", []string{long("a", 65) + "@example.org"}), 422, "validation", "/to/0"},
		{"domain label 64", with(m, "to", []string{"a@" + long("b", 64) + ".example"}), 422, "validation", "/to/0"},
		{"address 255", with(m, "bcc", []string{long("a", 60) + "@" + long(long("b", 60)+".", 3) + long("c", 10) + ".example"}), 422, "validation", "/bcc/0"},
		{"no recipient", with(m, "to", []string{}), 422, "validation", "/to"},
		{"51 distinct recipients", with(m, "to", addrs("to", 20), "cc", addrs("cc", 20), "bcc", addrs("bcc", 11)), 422, "validation", "/bcc"},
		{"CR in subject", with(m, "subject", "hi\rBcc: x@example.org"), 422, "validation", "/subject"},
		{"LF in display name", with(m, "to", []string{"Ann\nBcc: x <ann@example.org>"}), 422, "validation", "/to/0"},
		{"LF in from name", with(m, "from", "Shop\n <orders@shop.example>"), 422, "validation", "/from"},
		{"NUL in header value", with(m, "headers", map[string]string{"X-Order": "1\x002"}), 422, "validation", "/headers/X-Order"},
		{"CRLF in header value", with(m, "headers", map[string]string{"X-Order": "1\r\nBcc: x@example.org"}), 422, "validation", "/headers/X-Order"},
		{"CR in filename", with(m, "attachments", []any{att("filename", "a\r.txt")}), 422, "validation", "/attachments/0/filename"},
		{"LF in content_type", with(m, "attachments", []any{att("content_type", "text/plain\nX: y")}), 422, "validation", "/attachments/0/content_type"},
		{"NUL in content_id", with(m, "attachments", []any{att("content_id", "cid\x00x")}), 422, "validation", "/attachments/0/content_id"},
		{"bad header name", with(m, "headers", map[string]string{"X Order": "1"}), 422, "validation", "/headers/X Order"},
		{"header name 77", with(m, "headers", map[string]string{"X-" + long("a", 75): "1"}), 422, "validation", "/headers/X-" + long("a", 75)},
		{"reserved From", with(m, "headers", map[string]string{"From": "x@shop.example"}), 422, "validation", "/headers/From"},
		{"reserved DKIM-Signature", with(m, "headers", map[string]string{"DKIM-Signature": "v=1"}), 422, "validation", "/headers/DKIM-Signature"},
		{"reserved X-Mailgate-Foo", with(m, "headers", map[string]string{"X-Mailgate-Foo": "1"}), 422, "validation", "/headers/X-Mailgate-Foo"},
		{"reserved Content-Type", with(m, "headers", map[string]string{"Content-Type": "text/plain"}), 422, "validation", "/headers/Content-Type"},
		{"reserved lower-case x-mailgate", with(m, "headers", map[string]string{"x-mailgate-id": "1"}), 422, "validation", "/headers/x-mailgate-id"},
		{"reserved Postmark id", with(m, "headers", map[string]string{"X-PM-Metadata-mailgate_id": "1"}), 422, "validation", "/headers/X-PM-Metadata-mailgate_id"},
		{"Mailgun variables naming the id", with(m, "headers", map[string]string{"X-Mailgun-Variables": `{"mailgate_id":"x"}`}), 422, "validation", "/headers/X-Mailgun-Variables"},
		{"SendGrid args naming the id", with(m, "headers", map[string]string{"X-SMTPAPI": `{"unique_args":{"MAILGATE_ID":"x"}}`}), 422, "validation", "/headers/X-SMTPAPI"},
		{"reserved Content-Transfer-Encoding", with(m, "headers", map[string]string{"Content-Transfer-Encoding": "7bit"}), 422, "validation", "/headers/Content-Transfer-Encoding"},
		{"reserved Message-ID", with(m, "headers", map[string]string{"Message-ID": "<a@b>"}), 422, "validation", "/headers/Message-ID"},
		{"empty recipient", with(m, "to", []string{""}), 422, "validation", "/to/0"},
		{"address without domain", with(m, "to", []string{"ann"}), 422, "validation", "/to/0"},
		{"send_at without zone", with(m, "send_at", "2030-12-01T09:00:00"), 422, "validation", "/send_at"},
		{"reserved bcc lower case", with(m, "headers", map[string]string{"bcc": "x@example.org"}), 422, "validation", "/headers/bcc"},
		{"subject 999", with(m, "subject", long("s", 999)), 422, "validation", "/subject"},
		{"header value 999", with(m, "headers", map[string]string{"X-Order": long("v", 999)}), 422, "validation", "/headers/X-Order"},
		{"11 tags", with(m, "tags", addrs("t", 11)), 422, "validation", "/tags"},
		{"tag 129", with(m, "tags", []string{long("t", 129)}), 422, "validation", "/tags/0"},
		{"metadata 51 keys", with(m, "metadata", manyKeys), 422, "validation", "/metadata"},
		{"metadata key 65", with(m, "metadata", map[string]string{long("k", 65): "v"}), 422, "validation", "/metadata/" + long("k", 65)},
		{"metadata value 1001", with(m, "metadata", map[string]string{"k": long("v", 1001)}), 422, "validation", "/metadata/k"},
		{"metadata not string", with(m, "metadata", map[string]any{"k": 1}), 422, "validation", "/metadata/k"},
		{"metadata nested", with(m, "metadata", map[string]any{"k": map[string]string{"a": "b"}}), 422, "validation", "/metadata/k"},
		{"attachment without filename", with(m, "attachments", []any{att("filename", "")}), 422, "validation", "/attachments/0/filename"},
		{"attachment filename missing", with(m, "attachments", []any{map[string]any{"content_type": "text/plain", "content": "aGk="}}), 422, "validation", "/attachments/0/filename"},
		{"bad content type", with(m, "attachments", []any{att("content_type", "pdf")}), 422, "validation", "/attachments/0/content_type"},
		{"bad base64", with(m, "attachments", []any{att("content", "not base64!")}), 422, "validation", "/attachments/0/content"},
		{"url base64", with(m, "attachments", []any{att("content", "-_-_")}), 422, "validation", "/attachments/0/content"},
		{"neither text nor html", with(m, "text", ""), 422, "validation", "/text"},
		{"send_at not a date", with(m, "send_at", "tomorrow"), 422, "validation", "/send_at"},
		{"send_at in the past", with(m, "send_at", now.Add(-time.Minute).Format(time.RFC3339)), 422, "validation", "/send_at"},
		{"send_at 31 days ahead", with(m, "send_at", now.Add(31*24*time.Hour).Format(time.RFC3339)), 422, "validation", "/send_at"},
		{"sender domain not allowed", with(m, "from", "x@elsewhere.example"), 422, "validation", "/from"},
		{"sender subdomain not allowed", with(m, "from", "x@mail.shop.example"), 422, "validation", "/from"},
		{"bad reply_to", with(m, "reply_to", "nope"), 422, "validation", "/reply_to"},
		{"total size over 25 MB", oversized(), 413, "too-large", ""},
		{"attachments over 25 MB", bigAttachments(), 413, "too-large", ""},
	}
}

// metadataKeys is metadata with n keys.
func metadataKeys(n int) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("k%d", i)] = "v"
	}
	return out
}

// addrs makes n distinct addresses (or tags) with a prefix.
func addrs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d@example.org", prefix, i)
	}
	return out
}

// oversized is a valid message whose text is over 25 MB, written straight
// into a buffer.
func oversized() []byte {
	var b bytes.Buffer
	b.Grow(26 << 20)
	b.WriteString(`{"from":"orders@shop.example","to":["ann@example.org"],"subject":"big","text":"`)
	b.Write(bytes.Repeat([]byte("a"), 25<<20+1))
	b.WriteString(`"}`)
	return b.Bytes()
}

// bigAttachments is a message with two attachments of 13 MB each.
func bigAttachments() map[string]any {
	content := base64.StdEncoding.EncodeToString(make([]byte, 13<<20))
	a := map[string]any{"filename": "a.bin", "content_type": "application/octet-stream", "content": content}
	return with(message(), "attachments", []any{a, with(a, "filename", "b.bin")})
}

func TestSendRefusesInvalidRequests(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		for _, tc := range invalidCases(t, e.clock.Now()) {
			t.Run(tc.name, func(t *testing.T) {
				r := e.post(t, "/v1/messages", e.sender, tc.body)
				p := wantProblem(t, r, tc.code, tc.slug)
				if tc.field != "" && !p.hasField(tc.field) {
					t.Errorf("errors %v do not name %q", p.fields(), tc.field)
				}
			})
		}
		wantNothingStored(t, e)
	})
}

// TestSendNamesEveryMissingField checks that a body lacking required
// fields gets one 422 naming each of them, whether the contract or the
// server's own check finds it, and the other fields the contract refuses
// besides.
func TestSendNamesEveryMissingField(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := []struct {
		name string
		body any
		want []string
	}{
		{"empty object", map[string]any{}, []string{"/from", "/text", "/to"}},
		{"only a recipient", map[string]any{"to": []string{"ann@example.org"}}, []string{"/from", "/text"}},
		{"empty sender and an unknown field", map[string]any{"from": "", "cc": []string{}, "x": 1},
			[]string{"/from", "/text", "/to", "/x"}},
		{"batch item", map[string]any{"messages": []any{map[string]any{}}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/messages"
			if tc.want == nil {
				path = "/v1/messages/batch"
			}
			r := e.post(t, path, e.sender, tc.body)
			if tc.want == nil {
				var res struct {
					Results []struct{ Error *Problem }
				}
				wantCode(t, r, http.StatusOK)
				r.decode(t, &res)
				if len(res.Results) != 1 || res.Results[0].Error == nil {
					t.Fatalf("results %+v, want one error", res.Results)
				}
				got := res.Results[0].Error.fields()
				if want := []string{"/messages/0/from", "/messages/0/to", "/messages/0/text"}; !slices.Equal(got, want) {
					t.Errorf("errors name %v, want %v", got, want)
				}
				return
			}
			p := wantProblem(t, r, http.StatusUnprocessableEntity, "validation")
			if got := p.fields(); !slices.Equal(got, tc.want) {
				t.Errorf("errors name %v, want %v (%+v)", got, tc.want, p.Errors)
			}
		})
	}
	wantNothingStored(t, e)
}

// wantNothingStored checks that no message, event or task exists.
func wantNothingStored(t *testing.T, e *testEnv) {
	t.Helper()
	var msgs wireList[wireMessage]
	e.get(t, "/v1/messages", e.sender).decode(t, &msgs)
	var evs wireList[wireEvent]
	e.get(t, "/v1/events", e.sender).decode(t, &evs)
	if len(msgs.Data) != 0 || len(evs.Data) != 0 {
		t.Errorf("stored %d messages and %d events, want none", len(msgs.Data), len(evs.Data))
	}
	if n := e.taskCount(t); n != 0 {
		t.Errorf("%d tasks queued, want none", n)
	}
}

func TestSendAcceptsEdgeCases(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := []struct {
		name  string
		body  map[string]any
		rcpts int
	}{
		{"IDN domain", with(message(), "to", []string{"ann@bücher.example", "Bob <bob@例え.テスト>"}), 2},
		{"50 distinct with duplicates", with(message(), "to", addrs("a", 30),
			"cc", append(addrs("b", 20), "A0@example.org", "a1@EXAMPLE.org"), "bcc", addrs("a", 10)), 50},
		{"html only", with(message(), "text", "", "html", "<p>hi</p>"), 1},
		{"subject 998", with(message(), "subject", strings.Repeat("s", 998)), 1},
		{"10 tags", with(message(), "tags", addrs("t", 10)), 1},
		{"send_at 30 days ahead", with(message(), "send_at", e.clock.Now().Add(30*24*time.Hour).Format(time.RFC3339)), 1},
		{"50 metadata keys", with(message(), "metadata", metadataKeys(50)), 1},
		{"IDN sender is allowed domain", with(message(), "from", "Shop <orders@SHOP.example>"), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.send(t, e.sender, tc.body)
			if len(a.Recipients) != tc.rcpts {
				t.Errorf("%d recipients, want %d: %+v", len(a.Recipients), tc.rcpts, a.Recipients)
			}
		})
	}
}

func TestSendScheduled(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		at := e.clock.Now().Add(48 * time.Hour)
		a := e.send(t, e.sender, with(message(), "send_at", at.Format(time.RFC3339)))
		if a.Status != store.StatusScheduled || a.Recipients[0].Status != store.StatusScheduled {
			t.Errorf("202 body %+v, want scheduled", a)
		}
		m := e.getMessage(t, e.sender, a.ID)
		if m.SendAt == nil || *m.SendAt != timeString(at) {
			t.Errorf("send_at = %v, want %s", m.SendAt, timeString(at))
		}
		info := wantTask(t, e, a.ID, asynq.TaskStateScheduled)
		if !info.NextProcessAt.Equal(at) {
			t.Errorf("task runs at %v, want %v", info.NextProcessAt, at)
		}
	})
}

func TestSendSuppressed(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		wantCode(t, e.post(t, "/v1/suppressions", e.sender, map[string]any{"email": "blocked@example.org"}), http.StatusCreated)

		a := e.send(t, e.sender, with(message(), "to", []string{"Blocked <BLOCKED@Example.ORG>", "ann@example.org"}))
		want := []wireRecipient{{Email: "BLOCKED@Example.ORG", Status: "suppressed"}, {Email: "ann@example.org", Status: "queued"}}
		if d := cmp.Diff(want, a.Recipients, cmp.Comparer(strings.EqualFold)); d != "" {
			t.Errorf("recipients (-want +got):\n%s", d)
		}
		if a.Status != store.StatusQueued {
			t.Errorf("status %q, want queued", a.Status)
		}
		m := e.getMessage(t, e.sender, a.ID)
		got := summarize(m.Events)
		for i := range got {
			got[i].Recipient = strings.ToLower(got[i].Recipient)
		}
		wantEv := []eventSummary{{store.EventSuppressed, "blocked@example.org"}, {store.EventQueued, "ann@example.org"}}
		if d := cmp.Diff(wantEv, got); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
		wantTask(t, e, a.ID, asynq.TaskStatePending)

		all := e.send(t, e.sender, with(message(), "to", []string{"blocked@example.org"}))
		if all.Status != store.StatusSuppressed || e.getMessage(t, e.sender, all.ID).Status != store.StatusSuppressed {
			t.Errorf("all suppressed: status %q, want suppressed", all.Status)
		}
		if e.task(t, all.ID) != nil {
			t.Error("a message with every recipient suppressed was enqueued")
		}
	})
}

func TestSendIdempotency(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		idem := func(key string, token string, body any) response {
			return e.do(t, request{Method: http.MethodPost, Path: "/v1/messages", Token: token, Body: body,
				Header: map[string]string{"Idempotency-Key": key}})
		}
		first := idem("order-1", e.sender, message())
		wantCode(t, first, http.StatusAccepted)
		if first.Header.Get("Idempotent-Replayed") != "" {
			t.Error("first answer says Idempotent-Replayed")
		}
		again := idem("order-1", e.sender, message())
		wantCode(t, again, http.StatusAccepted)
		if !bytes.Equal(bytes.TrimSpace(first.Body), bytes.TrimSpace(again.Body)) {
			t.Errorf("replay body %s, want %s", again.Body, first.Body)
		}
		if again.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("Idempotent-Replayed = %q, want true", again.Header.Get("Idempotent-Replayed"))
		}
		var list wireList[wireMessage]
		e.get(t, "/v1/messages", e.sender).decode(t, &list)
		if len(list.Data) != 1 {
			t.Errorf("%d messages stored, want 1", len(list.Data))
		}

		wantProblem(t, idem("order-1", e.sender, with(message(), "subject", "other")),
			http.StatusUnprocessableEntity, "idempotency-mismatch")

		other := e.key(store.DefaultProjectID, "messages:send")
		var a, b acceptedBody
		first.decode(t, &a)
		r := idem("order-1", other, message())
		wantCode(t, r, http.StatusAccepted)
		r.decode(t, &b)
		if a.ID == b.ID || r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("another API key's Idempotency-Key replayed %s", a.ID)
		}
	})
}

func TestSendIdempotencyInFlight(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		keyID, _, _ := apikey.Parse(e.sender)
		raw, _ := json.Marshal(message())
		req, _, err := DecodeMessageRequest(raw)
		if err != nil {
			t.Fatal(err)
		}
		hashes := map[string][]byte{
			"same request":  requestHash(http.MethodPost+" /v1/messages", req),
			"other request": []byte("another request's hash"),
		}
		for name, hash := range hashes {
			t.Run(name, func(t *testing.T) {
				key := "in-flight " + name
				if _, err := e.store.ClaimIdempotencyKey(context.Background(), keyID, key, hash, time.Minute); err != nil {
					t.Fatal(err)
				}
				r := e.do(t, request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: message(),
					Header: map[string]string{"Idempotency-Key": key}})
				wantProblem(t, r, http.StatusConflict, "idempotency-in-flight")
			})
		}
		wantNothingStored(t, e)
	})
}

func TestSendIdempotencyKeyNotBurnedByRefusal(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		idem := func(body any) response {
			return e.do(t, request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: body,
				Header: map[string]string{"Idempotency-Key": "k1"}})
		}
		wantProblem(t, idem(with(message(), "to", []string{"bad"})), 422, "validation", "/to/0")
		wantProblem(t, idem(with(message(), "from", "x@elsewhere.example")), 422, "validation", "/from")
		wantCode(t, idem(message()), http.StatusAccepted)
	})
}

// failingTrigger makes every insert into recipients fail.
func failingTrigger(engine string) []string {
	if engine == store.DialectPostgres {
		return []string{
			`CREATE FUNCTION mg_test_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER mg_test_fail BEFORE INSERT ON recipients FOR EACH ROW EXECUTE FUNCTION mg_test_fail()`,
		}
	}
	return []string{`CREATE TRIGGER mg_test_fail BEFORE INSERT ON recipients BEGIN SELECT RAISE(ABORT, 'injected failure'); END`}
}

func TestSendCommitFailureIsNot202(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		db := e.sqlDB()
		for _, q := range failingTrigger(engine) {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		r := e.do(t, request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: message(),
			Header: map[string]string{"Idempotency-Key": "commit-fails"}})
		wantProblem(t, r, http.StatusInternalServerError, "internal")
		if strings.Contains(string(r.Body), "injected failure") {
			t.Errorf("the database error leaked to the client: %s", r.Body)
		}
		batch := e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": []any{message(), message()}})
		wantProblem(t, batch, http.StatusInternalServerError, "internal")
		for _, table := range []string{"messages", "recipients", "events", "message_tags"} {
			if n := count(t, db, "SELECT COUNT(*) FROM "+table); n != 0 {
				t.Errorf("%d rows in %s after a failed commit", n, table)
			}
		}
		if n := e.taskCount(t); n != 0 {
			t.Errorf("%d tasks queued after a failed commit", n)
		}
		if _, err := db.Exec("DROP TRIGGER mg_test_fail" + map[string]string{store.DialectPostgres: " ON recipients"}[engine]); err != nil {
			t.Fatal(err)
		}
		r = e.do(t, request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: message(),
			Header: map[string]string{"Idempotency-Key": "commit-fails"}})
		wantCode(t, r, http.StatusAccepted) // the failed request did not burn the key
	})
}

// lostQueue is a queue whose enqueues are lost (Redis down after commit).
type lostQueue struct{ *queue.Client }

func (lostQueue) EnqueueSend(context.Context, string, time.Time) error {
	return errors.New("redis unavailable")
}

func (lostQueue) EnqueueSendBatch(context.Context, string, []string) error {
	return errors.New("redis unavailable")
}

// TestSendBatchLostEnqueueHealedByReconciler: when a batch's task is lost
// after the commit, the reconciler enqueues the batch's task again (once,
// however often it runs), not one task per message; a scheduled message
// of the batch keeps a task of its own.
func TestSendBatchLostEnqueueHealedByReconciler(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine, func(_ *Config, d *Deps) { d.Queue = lostQueue{d.Queue.(*queue.Client)} })
		at := e.clock.Now().Add(3 * time.Hour)
		items := []any{message(), with(message(), "send_at", at.Format(time.RFC3339)), message()}
		r := e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": items})
		wantCode(t, r, http.StatusOK)
		var b batchBody
		r.decode(t, &b)
		if e.taskCount(t) != 0 {
			t.Fatal("a task exists although every enqueue was lost")
		}
		w := worker.New(worker.Config{Now: func() time.Time { return e.clock.Now().Add(2 * time.Minute) }},
			worker.Deps{Store: e.store, Queue: e.queue, Redis: e.rdb})
		for range 2 {
			if err := w.ReconcileOnce(context.Background()); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		wantBatchTask(t, e, store.BatchID(b.Results[0].ID), b.Results[0].ID, b.Results[2].ID)
		if info := wantTask(t, e, b.Results[1].ID, asynq.TaskStateScheduled); !info.NextProcessAt.Equal(at) {
			t.Errorf("scheduled task runs at %v, want %v", info.NextProcessAt, at)
		}
		if n := e.taskCount(t); n != 2 {
			t.Errorf("%d tasks after reconciling twice, want 2", n)
		}
	})
}

func TestSendLostEnqueueHealedByReconciler(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine, func(_ *Config, d *Deps) { d.Queue = lostQueue{d.Queue.(*queue.Client)} })
		now := e.send(t, e.sender, message())
		at := e.clock.Now().Add(3 * time.Hour)
		later := e.send(t, e.sender, with(message(), "send_at", at.Format(time.RFC3339)))
		if m := e.getMessage(t, e.sender, now.ID); m.Status != store.StatusQueued {
			t.Errorf("status %q, want queued", m.Status)
		}
		if e.task(t, now.ID) != nil || e.task(t, later.ID) != nil {
			t.Fatal("a task exists although the enqueue was lost")
		}
		wnow := func() time.Time { return e.clock.Now().Add(2 * time.Minute) }
		w := worker.New(worker.Config{Now: wnow},
			worker.Deps{Store: e.store, Queue: e.queue, Redis: e.rdb})
		for range 2 {
			if err := w.ReconcileOnce(context.Background()); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		// The reconciler may schedule a message due now at its own clock,
		// which the test runs ahead of asynq's.
		if info := wantTask(t, e, now.ID, asynq.TaskStatePending, asynq.TaskStateScheduled); info.NextProcessAt.After(wnow()) {
			t.Errorf("due message scheduled for %v, after the reconciler's now %v", info.NextProcessAt, wnow())
		}
		if info := wantTask(t, e, later.ID, asynq.TaskStateScheduled); !info.NextProcessAt.Equal(at) {
			t.Errorf("scheduled task runs at %v, want %v", info.NextProcessAt, at)
		}
		if n := e.taskCount(t); n != 2 {
			t.Errorf("%d tasks after reconciling twice, want 2", n)
		}
	})
}

// batchBody is the answer to POST /v1/messages/batch.
type batchBody struct {
	Results []struct {
		Index  int      `json:"index"`
		ID     string   `json:"id"`
		Status string   `json:"status"`
		Error  *Problem `json:"error"`
	} `json:"results"`
}

func TestSendBatch(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		items := []any{message(), with(message(), "to", []string{"not an address"}, "headers", map[string]string{"Bcc": "x@example.org"}),
			with(message(), "to", []string{"zed@example.org"})}
		r := e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": items})
		wantCode(t, r, http.StatusOK)
		var b batchBody
		r.decode(t, &b)
		if len(b.Results) != 3 {
			t.Fatalf("%d results, want 3", len(b.Results))
		}
		for _, i := range []int{0, 2} {
			res := b.Results[i]
			if res.Index != i || res.ID == "" || res.Status != store.StatusQueued || res.Error != nil {
				t.Errorf("results[%d] = %+v, want an accepted message", i, res)
				continue
			}
			e.getMessage(t, e.sender, res.ID)
		}
		// The accepted messages share one batch task, named after the first.
		wantBatchTask(t, e, store.BatchID(b.Results[0].ID), b.Results[0].ID, b.Results[2].ID)
		bad := b.Results[1]
		if bad.Index != 1 || bad.ID != "" || bad.Error == nil {
			t.Fatalf("results[1] = %+v, want an error", bad)
		}
		for _, f := range []string{"/messages/1/to/0", "/messages/1/headers/Bcc"} {
			if !bad.Error.hasField(f) {
				t.Errorf("results[1].error names %v, want %s", bad.Error.fields(), f)
			}
		}
		var list wireList[wireMessage]
		e.get(t, "/v1/messages", e.sender).decode(t, &list)
		if len(list.Data) != 2 || e.taskCount(t) != 1 {
			t.Errorf("%d messages and %d tasks, want 2 and 1", len(list.Data), e.taskCount(t))
		}
	})
}

// TestSendBatchSenderDomainsAndSuppressions: a batch asks the store once per
// sender domain and once for all suppressions, yet each item still gets
// its own verdict: both items from an unregistered domain fail naming
// their own from field, and only the item to a suppressed address has
// that recipient suppressed.
func TestSendBatchSenderDomainsAndSuppressions(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		wantCode(t, e.post(t, "/v1/suppressions", e.sender, map[string]any{"email": "blocked@example.org"}), http.StatusCreated)
		items := []any{
			with(message(), "from", "x@elsewhere.example"),
			with(message(), "to", []string{"ann@example.org"}),
			with(message(), "from", "y@elsewhere.example"),
			with(message(), "to", []string{"Blocked@Example.org", "bob@example.org"}),
		}
		r := e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": items})
		wantCode(t, r, http.StatusOK)
		var b batchBody
		r.decode(t, &b)
		if len(b.Results) != len(items) {
			t.Fatalf("%d results, want %d", len(b.Results), len(items))
		}
		for _, i := range []int{0, 2} {
			if res := b.Results[i]; res.Error == nil || !res.Error.hasField(fmt.Sprintf("/messages/%d/from", i)) {
				t.Errorf("results[%d] = %+v, want a problem naming /messages/%d/from", i, res, i)
			}
		}
		want := map[int][]string{1: {"queued"}, 3: {"suppressed", "queued"}}
		for i, statuses := range want {
			res := b.Results[i]
			if res.Error != nil || res.ID == "" {
				t.Fatalf("results[%d] = %+v, want accepted", i, res)
			}
			var got []string
			for _, rc := range e.getMessage(t, e.sender, res.ID).Recipients {
				got = append(got, rc.Status)
			}
			if fmt.Sprint(got) != fmt.Sprint(statuses) {
				t.Errorf("results[%d] recipients %v, want %v", i, got, statuses)
			}
		}
	})
}

func TestSendBatchItemBreakingTheSchemaFailsAlone(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	cases := map[string]map[string]any{
		"unknown field": with(message(), "bogus", true),
		"wrong type":    with(message(), "subject", 7),
		"subject 999":   with(message(), "subject", strings.Repeat("s", 999)),
	}
	for name, item := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.post(t, "/v1/messages/batch", e.sender, map[string]any{"messages": []any{message(), item}})
			wantCode(t, r, http.StatusOK)
			var b batchBody
			r.decode(t, &b)
			if len(b.Results) != 2 || b.Results[0].ID == "" || b.Results[1].Error == nil {
				t.Errorf("results %+v, want the first accepted and the second refused", b.Results)
			}
		})
	}
}

func TestSendBatchSize(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	big := make([]any, 501)
	for i := range big {
		big[i] = message()
	}
	cases := map[string]any{
		"501 items":   map[string]any{"messages": big},
		"empty":       map[string]any{"messages": []any{}},
		"no messages": map[string]any{},
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.post(t, "/v1/messages/batch", e.sender, body)
			wantProblem(t, r, http.StatusUnprocessableEntity, "validation", "/messages")
		})
	}
	wantNothingStored(t, e)
}

func TestSendBatchIdempotency(t *testing.T) {
	e := newEnv(t, store.DialectSQLite)
	body := map[string]any{"messages": []any{message(), with(message(), "to", []string{"bad"})}}
	post := func(body any) response {
		return e.do(t, request{Method: http.MethodPost, Path: "/v1/messages/batch", Token: e.sender, Body: body,
			Header: map[string]string{"Idempotency-Key": "batch-1"}})
	}
	first := post(body)
	wantCode(t, first, http.StatusOK)
	again := post(body)
	wantCode(t, again, http.StatusOK)
	if !bytes.Equal(bytes.TrimSpace(first.Body), bytes.TrimSpace(again.Body)) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay %s (replayed %q), want %s", again.Body, again.Header.Get("Idempotent-Replayed"), first.Body)
	}
	wantProblem(t, post(map[string]any{"messages": []any{message()}}), http.StatusUnprocessableEntity, "idempotency-mismatch")
	if n := e.taskCount(t); n != 1 {
		t.Errorf("%d tasks, want 1", n)
	}
}
