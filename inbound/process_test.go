package inbound

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/store"
)

func TestHardBounceByVERP(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net")
		raw := e.fixture("dsn-userunknown", id, 1, "bob@example.net")
		src := newFakeSource("bounces", Message{ID: "1:101", Raw: raw})
		p := e.poller(Config{}, src)
		n, err := p.Batch(ctx, src)
		if err != nil || n != 1 {
			t.Fatalf("batch = %d, %v; want 1, nil", n, err)
		}
		if !src.isDone("1:101") {
			t.Errorf("message not marked done")
		}
		if got := e.recipientStatus(id, 1); got != store.StatusBounced {
			t.Errorf("recipient 1 status %q, want bounced", got)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusSent {
			t.Errorf("recipient 0 status %q, want sent", got)
		}
		want := []string{`message.bounced bob@example.net {"type":"hard","reason":"userunknown","status":"5.1.1",` +
			`"diagnostic":"550 5.1.1 \u003cbob@example.net\u003e: Recipient address rejected: User unknown in virtual mailbox table",` +
			`"reply_code":550,"rule":"status:5.1.1","authenticated":true}`}
		if diff := cmp.Diff(want, e.events(id)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got := e.suppression("bob@example.net"); got != store.ReasonHardBounce {
			t.Errorf("suppression %q, want hard_bounce", got)
		}
		if got := testutil.ToFloat64(e.metrics.bounces.WithLabelValues("shop.example", "hard", "userunknown")); got != 1 {
			t.Errorf("bounces metric = %v, want 1", got)
		}
		if got := testutil.ToFloat64(e.metrics.messages.WithLabelValues("bounces", "bounce")); got != 1 {
			t.Errorf("inbound messages metric = %v, want 1", got)
		}
		list, _, err := e.store.ListInbound(ctx, store.InboundFilter{ProjectID: store.DefaultProjectID})
		if err != nil || len(list) != 1 {
			t.Fatalf("inbound rows = %v, %v", list, err)
		}
		row := list[0]
		if !row.Matched || !row.Authenticated || row.MessageID != id || row.Recipient != "bob@example.net" || row.Kind != "bounce" ||
			row.RawSize != int64(len(raw)) || !strings.Contains(string(row.Summary), `"reason":"userunknown"`) ||
			!strings.Contains(string(row.Summary), `"rule":"status:5.1.1"`) {
			t.Errorf("inbound row %+v", row)
		}
	})
}

func TestForgedVERPChangesNothing(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org")
		addr, err := e.codec.Address(id, 0)
		if err != nil {
			t.Fatalf("address: %v", err)
		}
		// Change one character of the MAC (the token's last character).
		at := strings.IndexByte(addr, '@')
		forged := addr[:at-1] + flip(addr[at-1]) + addr[at:]
		raw := strings.ReplaceAll(string(e.fixture("dsn-userunknown", id, 0, "ann@example.org")), addr, forged)
		src := newFakeSource("bounces", Message{ID: "7", Raw: []byte(raw)})
		p := e.poller(Config{}, src)
		if _, err := p.Batch(ctx, src); err != nil {
			t.Fatalf("batch: %v", err)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusSent {
			t.Errorf("status %q, want sent", got)
		}
		if evs := e.events(id); len(evs) != 0 {
			t.Errorf("events %v, want none", evs)
		}
		if got := e.suppression("ann@example.org"); got != "" {
			t.Errorf("suppressed with %q", got)
		}
		if got := testutil.ToFloat64(e.metrics.unmatched.WithLabelValues("bounces")); got != 1 {
			t.Errorf("unmatched metric = %v, want 1", got)
		}
		no := false
		list, _, err := e.store.ListInbound(ctx, store.InboundFilter{IncludeUnmatched: true, Matched: &no})
		if err != nil || len(list) != 1 || list[0].ProjectID != "" || list[0].MessageID != "" || list[0].Kind != "bounce" ||
			list[0].Authenticated {
			t.Errorf("unmatched rows = %+v, %v", list, err)
		}
		if !src.isDone("7") {
			t.Errorf("unmatched message not marked done")
		}
	})
}

// flip changes a token character to another valid one.
func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestComplaint(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org")
		src := newFakeSource("fbl", Message{ID: "c1", Raw: e.fixture("arf-complaint", id, 0, "ann@example.org")})
		if _, err := e.poller(Config{}, src).Batch(ctx, src); err != nil {
			t.Fatalf("batch: %v", err)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusComplained {
			t.Errorf("status %q, want complained", got)
		}
		want := []string{`message.complained ann@example.org {"feedback_type":"abuse","authenticated":true}`}
		if diff := cmp.Diff(want, e.events(id)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got := e.suppression("ann@example.org"); got != store.ReasonComplaint {
			t.Errorf("suppression %q, want complaint", got)
		}
		if got := testutil.ToFloat64(e.metrics.complaints.WithLabelValues("shop.example")); got != 1 {
			t.Errorf("complaints metric = %v, want 1", got)
		}
	})
}

// TestOperatorBounceRule: an operator rule given in Config.BounceRules
// decides the reason and hard flag of a bounce the built-in rules call a
// soft mailboxfull, and its id is in the event.
func TestOperatorBounceRule(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		src := newFakeSource("bounces")
		rules, err := bounce.ParseRules([]byte("quota exceeded for this account => suspend hard closed-quota\n"))
		if err != nil {
			t.Fatal(err)
		}
		p := e.poller(Config{BounceRules: rules}, src)
		id := e.sentMessage("full@example.org")
		msg := Message{ID: id, Raw: e.fixture("dsn-mailboxfull", id, 0, "full@example.org")}
		if _, err := p.Process(ctx, "bounces", msg); err != nil {
			t.Fatal(err)
		}
		want := []string{`message.bounced full@example.org {"type":"hard","reason":"suspend","status":"5.2.2",` +
			`"diagnostic":"552 5.2.2 \u003cfull@example.org\u003e: Recipient address rejected: Mailbox full: quota exceeded for this account",` +
			`"reply_code":552,"rule":"closed-quota","authenticated":true}`}
		if diff := cmp.Diff(want, e.events(id)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got := e.suppression("full@example.org"); got != store.ReasonHardBounce {
			t.Errorf("suppression %q, want hard_bounce", got)
		}
	})
}

// TestSESNotificationByMail: an Amazon SES bounce notification delivered
// as mail by an SNS email subscription (JSON then SNS's footer) is tied to
// its message by the VERP token of its mail.source and acts as a DSN would.
func TestSESNotificationByMail(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		src := newFakeSource("bounces")
		p := e.poller(Config{}, src)
		id := e.sentMessage("ann@example.org", "bob@example.net")
		msg := Message{ID: id, Raw: e.fixture("ses-bounce", id, 1, "bob@example.net")}
		if _, err := p.Process(ctx, "bounces", msg); err != nil {
			t.Fatal(err)
		}
		want := []string{`message.bounced bob@example.net {"type":"hard","reason":"userunknown","status":"5.1.1",` +
			`"diagnostic":"550 5.1.1 bob@example.net: Recipient address rejected: User unknown",` +
			`"reply_code":550,"rule":"status:5.1.1","authenticated":true}`}
		if diff := cmp.Diff(want, e.events(id)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got := e.recipientStatus(id, 1); got != store.StatusBounced {
			t.Errorf("recipient 1 status %q, want bounced", got)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusSent {
			t.Errorf("recipient 0 status %q, want sent", got)
		}
		if got := e.suppression("bob@example.net"); got != store.ReasonHardBounce {
			t.Errorf("suppression %q, want hard_bounce", got)
		}
	})
}

func TestSoftBouncesSuppressAfterLimit(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		src := newFakeSource("bounces")
		p := e.poller(Config{}, src)
		for i, wantSuppression := range []string{"", "", store.ReasonSoftBounces} {
			id := e.sentMessage("full@example.org")
			msg := Message{ID: id, Raw: e.fixture("dsn-mailboxfull", id, 0, "full@example.org")}
			if _, err := p.Process(ctx, "bounces", msg); err != nil {
				t.Fatalf("process %d: %v", i, err)
			}
			if got := e.recipientStatus(id, 0); got != store.StatusBounced {
				t.Errorf("bounce %d: status %q, want bounced", i, got)
			}
			if got := e.suppression("full@example.org"); got != wantSuppression {
				t.Errorf("after bounce %d: suppression %q, want %q", i, got, wantSuppression)
			}
			if i == 0 {
				want := []string{`message.bounced full@example.org {"type":"soft","reason":"mailboxfull","status":"5.2.2",` +
					`"diagnostic":"552 5.2.2 \u003cfull@example.org\u003e: Recipient address rejected: Mailbox full: quota exceeded for this account",` +
					`"reply_code":552,"rule":"status:5.2.2","authenticated":true}`}
				if diff := cmp.Diff(want, e.events(id)); diff != "" {
					t.Errorf("events (-want +got):\n%s", diff)
				}
			}
		}
		if got := testutil.ToFloat64(e.metrics.bounces.WithLabelValues("shop.example", "soft", "mailboxfull")); got != 3 {
			t.Errorf("soft bounces metric = %v, want 3", got)
		}
	})
}

// TestRepliesByReferences: replies and auto-replies tied to the message by
// In-Reply-To/References only make their events, marked not
// authenticated, and change nothing: they do not reset the recipient's
// soft bounces. An auto-reply sent to the VERP envelope sender (RFC 3834
// §4) is authenticated and does.
func TestRepliesByReferences(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		earlier := e.sentMessage("ann@example.org")
		p := e.poller(Config{})
		if _, err := p.Process(ctx, "bounces", Message{ID: "s1", Raw: e.fixture("dsn-mailboxfull", earlier, 0, "ann@example.org")}); err != nil {
			t.Fatalf("process soft bounce: %v", err)
		}
		e.wantSoftBounces("ann@example.org", 1)

		id := e.sentMessage("other@example.com", "ann@example.org")
		src := newFakeSource("replies",
			Message{ID: "a1", Raw: e.fixture("autoreply", id, 1, "ann@example.org")},
			Message{ID: "r1", Raw: e.fixture("reply", id, 1, "ann@example.org")})
		if _, err := e.poller(Config{}, src).Batch(ctx, src); err != nil {
			t.Fatalf("batch: %v", err)
		}
		want := []string{
			`message.auto_replied ann@example.org {"from":"ann@example.org","subject":"Automatic reply: Your order #1234",` +
				`"text":"I am out of the office until Monday and will answer then.\n\nAnn","authenticated":false}`,
			`message.replied ann@example.org {"from":"ann@example.org","subject":"Re: Your order #1234",` +
				`"text":"Hello, can you send it to my office address instead?\n\nThanks, Anna",` +
				`"in_reply_to":"` + id + `@shop.example",` +
				`"attachments":[{"filename":"address.pdf","content_type":"application/pdf","size":54}],"authenticated":false}`,
		}
		// The two mails of one batch are processed concurrently: their
		// events may be sequenced either way.
		if diff := cmp.Diff(want, e.events(id), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if got := e.recipientStatus(id, 1); got != store.StatusSent {
			t.Errorf("status %q, want sent (replies change no status)", got)
		}
		for _, kind := range []string{"reply", "auto_reply"} {
			if got := testutil.ToFloat64(e.metrics.replies.WithLabelValues(kind)); got != 1 {
				t.Errorf("replies{kind=%s} = %v, want 1", kind, got)
			}
		}
		e.wantSoftBounces("ann@example.org", 1)
		if got := e.inboundAuthenticated(id); !cmp.Equal(got, []bool{false, false}) {
			t.Errorf("inbound rows authenticated %v, want false, false", got)
		}

		res, err := p.Process(ctx, "replies", Message{ID: "a2", Raw: e.fixture("autoreply-verp", id, 1, "ann@example.org")})
		if err != nil || !res.Matched || !res.Authenticated {
			t.Fatalf("process auto-reply to the VERP address = %+v, %v; want matched and authenticated", res, err)
		}
		e.wantSoftBounces("ann@example.org", 0)
		if evs := e.events(id); len(evs) != 3 || !strings.HasSuffix(evs[2], `"authenticated":true}`) {
			t.Errorf("events %q, want a third, authenticated", evs)
		}
	})
}

// TestHeadersOnlyBounceChangesNothing: a recipient of a message with two
// recipients writes a bounce by hand that quotes the message's headers
// (X-Mailgate-ID, Message-ID) and names the other recipient as failed,
// without a VERP token. It is recorded, matched but not authenticated,
// with its event marked so, and changes nobody's status, suppresses nobody
// and counts no soft bounce.
func TestHeadersOnlyBounceChangesNothing(t *testing.T) {
	soft := strings.NewReplacer("550 5.1.1", "552 5.2.2", "Status: 5.1.1", "Status: 5.2.2",
		"User unknown in virtual mailbox table", "Mailbox full: quota exceeded", "User unknown in virtual mailbox\n    table",
		"Mailbox full: quota exceeded")
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for _, tc := range []struct {
			name, reason, typ string
			edit              func(string) string
		}{
			{"hard", "userunknown", "hard", func(s string) string { return s }},
			{"soft", "mailboxfull", "soft", soft.Replace},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := e.sentMessage("ann@example.org", "bob@example.net")
				raw := tc.edit(string(e.fixture("dsn-headers-only", id, 1, "bob@example.net")))
				res, err := e.poller(Config{}).Process(ctx, "bounces", Message{ID: "crafted-" + tc.name, Raw: []byte(raw)})
				if err != nil {
					t.Fatalf("process: %v", err)
				}
				if !res.Matched || res.Authenticated || res.MessageID != id || res.Kind != "bounce" {
					t.Errorf("result %+v, want a bounce matched to %s, not authenticated", res, id)
				}
				wantStatuses(t, e, id, store.StatusSent, store.StatusSent)
				evs := e.events(id)
				if len(evs) != 1 || !strings.HasPrefix(evs[0], store.EventBounced+" bob@example.net ") ||
					!strings.Contains(evs[0], `"type":"`+tc.typ+`","reason":"`+tc.reason+`"`) ||
					!strings.HasSuffix(evs[0], `"authenticated":false}`) {
					t.Errorf("events %q, want one message.bounced for bob, %s, not authenticated", evs, tc.reason)
				}
				for _, a := range []string{"ann@example.org", "bob@example.net"} {
					if got := e.suppression(a); got != "" {
						t.Errorf("%s suppressed with %q", a, got)
					}
					e.wantSoftBounces(a, 0)
				}
				m, err := e.store.GetMessage(ctx, store.DefaultProjectID, id)
				if err != nil || m.Status != store.StatusSent {
					t.Errorf("message status %q, %v; want sent", m.Status, err)
				}
				if got := e.inboundAuthenticated(id); !cmp.Equal(got, []bool{false}) {
					t.Errorf("inbound rows authenticated %v, want one, false", got)
				}
			})
		}
		if got := testutil.CollectAndCount(e.metrics.bounces); got != 0 {
			t.Errorf("%d bounce metric series, want none (nothing was applied)", got)
		}
	})
}

// TestTokenNamesTheRecipient: a report a recipient's own token
// authenticates concerns that recipient, whatever address its text names
// (one SMTP transaction per recipient: the report is about that delivery),
// so quoting another recipient as failed affects only the token's owner.
func TestTokenNamesTheRecipient(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net")
		res, err := e.poller(Config{}).Process(ctx, "bounces", Message{ID: "own", Raw: e.fixture("dsn-userunknown", id, 0, "bob@example.net")})
		if err != nil || !res.Authenticated {
			t.Fatalf("process = %+v, %v; want authenticated", res, err)
		}
		wantStatuses(t, e, id, store.StatusBounced, store.StatusSent)
		sup := map[string]string{"ann@example.org": e.suppression("ann@example.org"), "bob@example.net": e.suppression("bob@example.net")}
		if diff := cmp.Diff(map[string]string{"ann@example.org": store.ReasonHardBounce, "bob@example.net": ""}, sup); diff != "" {
			t.Errorf("suppressions (-want +got):\n%s", diff)
		}
		if evs := e.events(id); len(evs) != 1 || !strings.HasPrefix(evs[0], store.EventBounced+" ann@example.org ") {
			t.Errorf("events %q, want one message.bounced for ann", evs)
		}
	})
}

// TestComplaintByReturnedReturnPath: an ARF report whose only token is the
// Return-Path of the returned original (text/rfc822-headers, RFC 5965 §2
// item c), with the recipient's address redacted, suppresses the
// recipient the token names and no other.
func TestComplaintByReturnedReturnPath(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net")
		res, err := e.poller(Config{}).Process(ctx, "fbl", Message{ID: "c2", Raw: e.fixture("arf-returned-headers", id, 1, "")})
		if err != nil || !res.Matched || !res.Authenticated {
			t.Fatalf("process = %+v, %v; want matched and authenticated", res, err)
		}
		wantStatuses(t, e, id, store.StatusSent, store.StatusComplained)
		want := []string{`message.complained bob@example.net {"feedback_type":"abuse","authenticated":true}`}
		if diff := cmp.Diff(want, e.events(id)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		sup := map[string]string{"ann@example.org": e.suppression("ann@example.org"), "bob@example.net": e.suppression("bob@example.net")}
		if diff := cmp.Diff(map[string]string{"ann@example.org": "", "bob@example.net": store.ReasonComplaint}, sup); diff != "" {
			t.Errorf("suppressions (-want +got):\n%s", diff)
		}
		if got := e.inboundAuthenticated(id); !cmp.Equal(got, []bool{true}) {
			t.Errorf("inbound rows authenticated %v, want one, true", got)
		}
		if got := testutil.ToFloat64(e.metrics.complaints.WithLabelValues("shop.example")); got != 1 {
			t.Errorf("complaints metric = %v, want 1", got)
		}
	})
}

func TestCrashBeforeDoneMakesOneEvent(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org")
		src := newFakeSource("bounces", Message{ID: "9", Raw: e.fixture("dsn-userunknown", id, 0, "ann@example.org")})
		src.failDone = true
		p := e.poller(Config{}, src)
		if _, err := p.Batch(ctx, src); err == nil {
			t.Fatal("batch with a failing Done returned nil")
		}
		src.failDone = false
		n, err := p.Batch(ctx, src)
		if err != nil || n != 1 {
			t.Fatalf("second batch = %d, %v; want 1 skipped, nil", n, err)
		}
		if !src.isDone("9") {
			t.Errorf("message not marked done on the second pass")
		}
		// And processing the same mailbox message directly again is a duplicate.
		res, err := p.Process(ctx, "bounces", src.msgs[0])
		if err != nil || !res.Duplicate {
			t.Errorf("process again = %+v, %v; want duplicate", res, err)
		}
		if evs := e.events(id); len(evs) != 1 {
			t.Errorf("events %v, want exactly one", evs)
		}
		if got := testutil.ToFloat64(e.metrics.messages.WithLabelValues("bounces", "bounce")); got != 1 {
			t.Errorf("inbound messages metric = %v, want 1", got)
		}
	})
}

func TestUnparseableMailIsKept(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		src := newFakeSource("bounces", Message{ID: "e", Raw: nil})
		if _, err := e.poller(Config{}, src).Batch(ctx, src); err != nil {
			t.Fatalf("batch: %v", err)
		}
		list, _, err := e.store.ListInbound(ctx, store.InboundFilter{IncludeUnmatched: true})
		if err != nil || len(list) != 1 || list[0].Kind != "unknown" || !strings.Contains(string(list[0].Summary), `"error"`) {
			t.Errorf("rows = %+v, %v", list, err)
		}
		if !src.isDone("e") {
			t.Errorf("not marked done")
		}
	})
}
