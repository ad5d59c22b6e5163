package inbound

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/store"
)

// TestFeedbackApply: verified provider events change the recipient they
// name, on a message of the endpoint's project only, once.
func TestFeedbackApply(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net", "cat@example.net")
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now}, e.store, e.metrics)
		events := []feedback.Event{
			{ID: "ev-1", Kind: feedback.KindBounce, Recipient: "BOB@example.net", Severity: feedback.SeverityPermanent, Status: "5.1.1",
				Diagnostic: "550 5.1.1 user unknown", MailgateID: id},
			{ID: "ev-2", Kind: feedback.KindComplaint, Recipient: "cat@example.net", FeedbackType: "abuse",
				MessageID: "<" + id + "@shop.example>"},
			{ID: "ev-3", Kind: feedback.KindDelivery, Recipient: "ann@example.org", MailgateID: id},
		}
		n, err := f.Apply(ctx, "ses", store.DefaultProjectID, events)
		if err != nil || n != 3 {
			t.Fatalf("Apply = %d, %v; want 3 applied (the delivery resets soft bounces)", n, err)
		}
		for pos, want := range []string{store.StatusSent, store.StatusBounced, store.StatusComplained} {
			if got := e.recipientStatus(id, pos); got != want {
				t.Errorf("recipient %d status %q, want %q", pos, got, want)
			}
		}
		wantEvents := []string{
			`message.bounced bob@example.net {"type":"hard","reason":"userunknown","status":"5.1.1","diagnostic":"550 5.1.1 user unknown","reply_code":550,"rule":"provider:ses:permanent/status:5.1.1","authenticated":true}`,
			`message.complained cat@example.net {"feedback_type":"abuse","authenticated":true}`,
		}
		if d := cmp.Diff(wantEvents, e.events(id)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
		if got := e.suppression("bob@example.net"); got != store.ReasonHardBounce {
			t.Errorf("bob suppression %q", got)
		}
		if got := e.suppression("cat@example.net"); got != store.ReasonComplaint {
			t.Errorf("cat suppression %q", got)
		}
		if got := testutil.ToFloat64(e.metrics.bounces.WithLabelValues("shop.example", "hard", "userunknown")); got != 1 {
			t.Errorf("bounces metric %v", got)
		}
		if got := testutil.ToFloat64(e.metrics.messages.WithLabelValues("feedback/ses", "complaint")); got != 1 {
			t.Errorf("messages metric %v", got)
		}
		// The same events again write nothing.
		if n, err := f.Apply(ctx, "ses", store.DefaultProjectID, events); err != nil || n != 0 {
			t.Errorf("replayed Apply = %d, %v", n, err)
		}
		if got := len(e.events(id)); got != 2 {
			t.Errorf("%d events after replay", got)
		}
	})
}

// TestFeedbackOtherProject: another project's provider credentials
// cannot touch this project's message, and a soft bounce only counts.
func TestFeedbackOtherProject(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org")
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now}, e.store, e.metrics)
		other, err := e.store.CreateProject(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		ev := feedback.Event{ID: "x-1", Kind: feedback.KindBounce, Recipient: "ann@example.org", Severity: feedback.SeverityPermanent, MailgateID: id}
		if n, err := f.Apply(ctx, "mailgun", other.ID, []feedback.Event{ev}); err != nil || n != 0 {
			t.Fatalf("Apply = %d, %v", n, err)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusSent {
			t.Errorf("status %q after another project's bounce", got)
		}
		// The notification is the other project's, unmatched; this
		// project's list does not show it.
		unmatched := false
		rows, _, err := e.store.ListInbound(ctx, store.InboundFilter{ProjectID: other.ID, Matched: &unmatched})
		if err != nil || len(rows) != 1 || rows[0].MessageID != "" || rows[0].Authenticated {
			t.Errorf("the other project's unmatched rows %+v, %v", rows, err)
		}
		if rows, _, err := e.store.ListInbound(ctx, store.InboundFilter{ProjectID: store.DefaultProjectID}); err != nil || len(rows) != 0 {
			t.Errorf("this project's rows %+v, %v", rows, err)
		}
		soft := feedback.Event{ID: "x-2", Kind: feedback.KindBounce, Recipient: "ann@example.org", Status: "4.2.2", MailgateID: id}
		if _, err := f.Apply(ctx, "mailgun", store.DefaultProjectID, []feedback.Event{soft}); err != nil {
			t.Fatal(err)
		}
		e.wantSoftBounces("ann@example.org", 1)
		if got := e.suppression("ann@example.org"); got != "" {
			t.Errorf("suppressed %q after one soft bounce", got)
		}
		want := []string{`message.bounced ann@example.org {"type":"soft","reason":"mailboxfull","status":"4.2.2","diagnostic":"","rule":"provider:mailgun/status:4.2.2","authenticated":true}`}
		if d := cmp.Diff(want, e.events(id)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
	})
}

// TestFeedbackVerdict: the provider's permanent or temporary verdict
// decides hard or soft over the classifying rules, which still give the
// reason; the rule names both.
func TestFeedbackVerdict(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net")
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now}, e.store, e.metrics)
		events := []feedback.Event{
			{ID: "v-1", Kind: feedback.KindBounce, Recipient: "ann@example.org", Severity: feedback.SeverityTemporary,
				Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 user unknown", MailgateID: id},
			{ID: "v-2", Kind: feedback.KindBounce, Recipient: "bob@example.net", Severity: feedback.SeverityPermanent,
				Diagnostic: "452 4.2.2 mailbox full", MailgateID: id},
		}
		if _, err := f.Apply(ctx, "sendgrid", store.DefaultProjectID, events); err != nil {
			t.Fatal(err)
		}
		want := []string{
			`message.bounced ann@example.org {"type":"soft","reason":"userunknown","status":"5.1.1","diagnostic":"550 5.1.1 user unknown","reply_code":550,"rule":"provider:sendgrid:temporary/status:5.1.1","authenticated":true}`,
			`message.bounced bob@example.net {"type":"hard","reason":"mailboxfull","status":"4.2.2","diagnostic":"452 4.2.2 mailbox full","reply_code":452,"rule":"provider:sendgrid:permanent/status:4.2.2","authenticated":true}`,
		}
		if d := cmp.Diff(want, e.events(id)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
		e.wantSoftBounces("ann@example.org", 1)
		if got := e.suppression("ann@example.org"); got != "" {
			t.Errorf("ann suppressed %q after a temporary bounce", got)
		}
		if got := e.suppression("bob@example.net"); got != store.ReasonHardBounce {
			t.Errorf("bob suppression %q after a permanent bounce", got)
		}
	})
}

// TestFeedbackCause: a bounce whose status and diagnostic explain nothing
// (SES reporting an address on its suppression list) takes its reason
// from the provider's named cause; a diagnostic that explains decides
// over the cause, and so does an operator rule, even one that says onhold.
func TestFeedbackCause(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net", "cy@example.com")
		rules, err := bounce.ParseRules([]byte("held for review => onhold soft site-hold\n"))
		if err != nil {
			t.Fatal(err)
		}
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now, BounceRules: rules}, e.store, e.metrics)
		events := []feedback.Event{
			{ID: "c-1", Kind: feedback.KindBounce, Recipient: "ann@example.org", Severity: feedback.SeverityPermanent,
				Cause: "userunknown", MailgateID: id},
			{ID: "c-2", Kind: feedback.KindBounce, Recipient: "bob@example.net", Severity: feedback.SeverityTemporary,
				Cause: "mailboxfull", Diagnostic: "554 5.7.1 blocked using zen.spamhaus.org", MailgateID: id},
			{ID: "c-3", Kind: feedback.KindBounce, Recipient: "cy@example.com",
				Cause: "mailboxfull", Diagnostic: "Message held for review", MailgateID: id},
		}
		if _, err := f.Apply(ctx, "ses", store.DefaultProjectID, events); err != nil {
			t.Fatal(err)
		}
		want := []string{
			`message.bounced ann@example.org {"type":"hard","reason":"userunknown","status":"5.0.0","diagnostic":"","rule":"provider:ses:permanent/cause:userunknown","authenticated":true}`,
			`message.bounced bob@example.net {"type":"soft","reason":"blocked","status":"5.7.1","diagnostic":"554 5.7.1 blocked using zen.spamhaus.org","reply_code":554,"rule":"provider:ses:temporary/diagnostic:blocked:blocked using","authenticated":true}`,
			`message.bounced cy@example.com {"type":"soft","reason":"onhold","status":"5.0.0","diagnostic":"Message held for review","rule":"provider:ses/site-hold","authenticated":true}`,
		}
		if d := cmp.Diff(want, e.events(id)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
	})
}

// TestFeedbackDelay: a provider's delay (it is still retrying) is
// recorded and changes nothing: no status, no soft-bounce count, no
// event; what the provider reports next applies in full.
func TestFeedbackDelay(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org")
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now}, e.store, e.metrics)
		delay := feedback.Event{ID: "d-1", Kind: feedback.KindDelay, Recipient: "ann@example.org",
			Severity: feedback.SeverityTemporary, Status: "4.7.1", Diagnostic: "451 4.7.1 greylisted", MailgateID: id}
		if n, err := f.Apply(ctx, "mailgun", store.DefaultProjectID, []feedback.Event{delay}); err != nil || n != 0 {
			t.Fatalf("Apply(delay) = %d, %v; want 0 applied", n, err)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusSent {
			t.Errorf("status %q after a delay, want sent", got)
		}
		e.wantSoftBounces("ann@example.org", 0)
		if got := e.events(id); len(got) != 0 {
			t.Errorf("events after a delay: %v", got)
		}
		rows, _, err := e.store.ListInbound(ctx, store.InboundFilter{ProjectID: store.DefaultProjectID})
		if err != nil || len(rows) != 1 || rows[0].Kind != "delayed" || !rows[0].Matched {
			t.Errorf("inbound rows %+v, %v; want one matched delayed row", rows, err)
		}
		perm := feedback.Event{ID: "d-2", Kind: feedback.KindBounce, Recipient: "ann@example.org",
			Severity: feedback.SeverityPermanent, Status: "5.1.1", Diagnostic: "550 5.1.1 user unknown", MailgateID: id}
		if n, err := f.Apply(ctx, "mailgun", store.DefaultProjectID, []feedback.Event{perm}); err != nil || n != 1 {
			t.Fatalf("Apply(permanent) = %d, %v; want 1 applied", n, err)
		}
		if got := e.suppression("ann@example.org"); got != store.ReasonHardBounce {
			t.Errorf("suppression %q, want hard_bounce", got)
		}
	})
}

// TestComplaintAfterSoftBounce: a complaint proves the message was
// delivered, so it applies to a recipient a soft bounce left bounced
// (event, status complained, complaint suppression), whether it comes
// from a provider or as an ARF report by mail.
// TestComplaintReplacesSoftBounceSuppression: an address suppressed for
// soft bounces that then complains is suppressed for the complaint.
func TestComplaintReplacesSoftBounceSuppression(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org")
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now, SoftBounceLimit: 1}, e.store, e.metrics)
		soft := feedback.Event{ID: "r-1", Kind: feedback.KindBounce, Recipient: "ann@example.org",
			Severity: feedback.SeverityTemporary, Status: "4.2.2", Diagnostic: "452 4.2.2 mailbox full", MailgateID: id}
		if _, err := f.Apply(ctx, "sendgrid", store.DefaultProjectID, []feedback.Event{soft}); err != nil {
			t.Fatal(err)
		}
		if got := e.suppression("ann@example.org"); got != store.ReasonSoftBounces {
			t.Fatalf("suppression %q after a soft bounce at limit 1, want %s", got, store.ReasonSoftBounces)
		}
		complaint := feedback.Event{ID: "r-2", Kind: feedback.KindComplaint, Recipient: "ann@example.org",
			FeedbackType: "abuse", MailgateID: id}
		if _, err := f.Apply(ctx, "sendgrid", store.DefaultProjectID, []feedback.Event{complaint}); err != nil {
			t.Fatal(err)
		}
		if got := e.suppression("ann@example.org"); got != store.ReasonComplaint {
			t.Errorf("suppression %q after the complaint, want %s", got, store.ReasonComplaint)
		}
	})
}

func TestComplaintAfterSoftBounce(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := e.sentMessage("ann@example.org", "bob@example.net")
		f := NewFeedback(FeedbackConfig{Now: e.clock.Now}, e.store, e.metrics)
		soft := feedback.Event{ID: "s-1", Kind: feedback.KindBounce, Recipient: "ann@example.org",
			Severity: feedback.SeverityTemporary, Status: "4.2.2", Diagnostic: "452 4.2.2 mailbox full", MailgateID: id}
		complaint := feedback.Event{ID: "s-2", Kind: feedback.KindComplaint, Recipient: "ann@example.org",
			FeedbackType: "abuse", MailgateID: id}
		if _, err := f.Apply(ctx, "sendgrid", store.DefaultProjectID, []feedback.Event{soft}); err != nil {
			t.Fatal(err)
		}
		if got := e.recipientStatus(id, 0); got != store.StatusBounced {
			t.Fatalf("status %q after a soft bounce, want bounced", got)
		}
		if n, err := f.Apply(ctx, "sendgrid", store.DefaultProjectID, []feedback.Event{complaint}); err != nil || n != 1 {
			t.Errorf("Apply(complaint) = %d, %v; want 1 applied", n, err)
		}

		// The mailbox path: a soft-bounce DSN, then an ARF report.
		p := e.poller(Config{})
		if _, err := p.Process(ctx, "bounces", Message{ID: "b1", Raw: e.fixture("dsn-mailboxfull", id, 1, "bob@example.net")}); err != nil {
			t.Fatal(err)
		}
		if got := e.recipientStatus(id, 1); got != store.StatusBounced {
			t.Fatalf("bob status %q after a soft bounce DSN, want bounced", got)
		}
		if _, err := p.Process(ctx, "fbl", Message{ID: "c1", Raw: e.fixture("arf-complaint", id, 1, "bob@example.net")}); err != nil {
			t.Fatal(err)
		}

		for pos, email := range []string{"ann@example.org", "bob@example.net"} {
			if got := e.recipientStatus(id, pos); got != store.StatusComplained {
				t.Errorf("%s status %q, want complained", email, got)
			}
			if got := e.suppression(email); got != store.ReasonComplaint {
				t.Errorf("%s suppression %q, want complaint", email, got)
			}
		}
		complaints := 0
		for _, ev := range e.events(id) {
			if strings.HasPrefix(ev, store.EventComplained+" ") {
				complaints++
			}
		}
		if complaints != 2 {
			t.Errorf("%d complaint events, want 2: %v", complaints, e.events(id))
		}
	})
}
