package bounce

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoticeShapes checks bounces that are neither a DSN nor plain text:
// an HTML-only notice, a multipart/alternative notice, and a notice with
// the original attached (whose addresses must not be taken for the
// failed recipient).
func TestNoticeShapes(t *testing.T) {
	const head = "From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>\nTo: b+tok@bounces.example.com\n" +
		"Subject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\n"
	const html = "<html><body><p>Delivery to the following recipient failed permanently:</p>" +
		"<p><b>gone@example.org</b></p><p>Technical details of permanent failure:<br>" +
		"The recipient server did not accept our requests to connect. 550 5.1.1 The email account " +
		"that you tried to reach does not exist.</p></body></html>\n"
	const text = "Delivery to the following recipient failed permanently:\n\n     gone@example.org\n\n" +
		"Technical details of permanent failure:\n550 5.1.1 The email account that you tried to reach does not exist.\n"
	const original = "From: Shop <orders@shop.example.com>\nTo: Someone Else <other@example.com>\n" +
		"Cc: third@example.net\nSubject: Your order\nMessage-ID: <o-1@shop.example.com>\n\nThanks, other@example.com!\n"
	for name, raw := range map[string]string{
		"html-only": head + "Content-Type: text/html; charset=utf-8\n\n" + html,
		"alternative": head + "Content-Type: multipart/alternative; boundary=alt\n\n--alt\n" +
			"Content-Type: text/plain\n\n" + text + "\n--alt\nContent-Type: text/html\n\n" + html + "\n--alt--\n",
		"html-with-original": head + "Content-Type: multipart/mixed; boundary=mix\n\n--mix\n" +
			"Content-Type: text/html\n\n" + html + "\n--mix\nContent-Type: message/rfc822\n" +
			"Content-Disposition: attachment\n\n" + original + "\n--mix--\n",
		"alternative-with-original": head + "Content-Type: multipart/mixed; boundary=mix\n\n--mix\n" +
			"Content-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain\n\n" + text +
			"\n--alt\nContent-Type: text/html\n\n" + html + "\n--alt--\n\n--mix\nContent-Type: message/rfc822\n\n" +
			original + "\n--mix--\n",
	} {
		r, err := Parse([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Kind != KindBounce || len(r.Results) != 1 {
			t.Errorf("%s: kind %s, %d results %+v, want one bounce", name, r.Kind, len(r.Results), r.Results)
			continue
		}
		x := r.Results[0]
		if x.Recipient != "gone@example.org" || x.Status != "5.1.1" || x.Reason != ReasonUserUnknown || !x.Hard {
			t.Errorf("%s: %+v, want gone@example.org 5.1.1 userunknown hard", name, x)
		}
	}
}

// TestSESNotificationEncoded checks an Amazon SES bounce notification
// delivered by SNS as mail with a base64 body (the JSON is read after the
// transfer decoding) whose diagnostic decides the reason.
func TestSESNotificationEncoded(t *testing.T) {
	inner := `{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",` +
		`"reportingMTA":"dns; a1-2.smtp-out.amazonses.com","bouncedRecipients":[{"emailAddress":"gone@example.org",` +
		`"action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},` +
		`"mail":{"source":"b+tok@bounces.example.com","headers":[{"name":"X-Mailgate-ID","value":"01HQ"}]}}`
	env := `{"Type":"Notification","MessageId":"m-1","Message":` + strconv.Quote(inner) + `}`
	raw := "From: AWS Notifications <no-reply@sns.amazonaws.com>\nTo: ops@example.com\nSubject: AWS Notification Message\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: base64\n\n" +
		base64Lines(env)
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindBounce || len(r.Results) != 1 {
		t.Fatalf("kind %s results %+v", r.Kind, r.Results)
	}
	x := r.Results[0]
	if x.Recipient != "gone@example.org" || x.Reason != ReasonUserUnknown || !x.Hard || x.Status != "5.1.1" ||
		r.Refs.VERPToken != "tok" || r.Refs.MailgateID != "01HQ" {
		t.Errorf("result %+v refs %+v", x, r.Refs)
	}
}

// base64Lines encodes s in 76-character base64 lines (RFC 2045 §6.8).
func base64Lines(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	return b.String() + enc + "\n"
}

// TestTextNoticeTemporary checks that a plain-text notice without a status
// code is a delay when it says the message is still queued, unless it
// also says delivery was given up, and that delay subjects are read in a
// notice from an address that is no mailer daemon.
func TestTextNoticeTemporary(t *testing.T) {
	for _, c := range []struct {
		name, from, subject, body string
		kind                      string
		class                     byte
	}{
		{"postfix-warning", "MAILER-DAEMON@mx.example.net", "Delayed Mail (still being retried)",
			"This is the mail system at host mx.example.net.\n\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\n" +
				"<late@example.org>: connect to mx.example.org[192.0.2.1]:25: Connection timed out\n", KindDelayed, '4'},
		{"exim-delay-subject", "Mail Administrator <admin@mx.example.net>", "Warning: message 1abc-000123-XY delayed 24 hours",
			"This message was created automatically by mail delivery software.\nA message that you sent has not yet been delivered to one or more of its recipients after more than 24 hours on the queue.\n\n" +
				"  late@example.org\n    Delay reason: Connection refused\n\nNo action is required on your part. Delivery attempts will continue.\n", KindDelayed, '4'},
		{"given-up", "MAILER-DAEMON@mx.example.net", "failure notice",
			"Hi. This is the qmail-send program at mx.example.net.\nI tried to deliver a message, but it bounced; I will retry no more.\n\n" +
				"<gone@example.org>:\nConnection refused. I'm not going to try again; this message has been in the queue too long.\n", KindBounce, '5'},
	} {
		raw := "From: " + c.from + "\nTo: b+tok@bounces.example.com\nSubject: " + c.subject + "\nContent-Type: text/plain\n\n" + c.body
		r, err := Parse([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Kind != c.kind || len(r.Results) == 0 || statusClass(r.Results[0].Status) != c.class {
			t.Errorf("%s: kind %s results %+v, want %s of class %c", c.name, r.Kind, r.Results, c.kind, c.class)
		}
	}
}

// TestTextNoticeContacts checks that the contacts a notice names
// (postmaster, mailer-daemon) are not taken for failed recipients.
func TestTextNoticeContacts(t *testing.T) {
	raw := "From: MAILER-DAEMON@mx.example.net\nTo: b+tok@bounces.example.com\nSubject: Undeliverable message\n" +
		"Content-Type: text/plain\n\nIf you need help, write to Postmaster@mx.example.net.\n\n" +
		"Your message could not be delivered to gone@example.org:\n550 5.1.1 mailbox does not exist\n"
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindBounce || len(r.Results) != 1 || r.Results[0].Recipient != "gone@example.org" || r.Results[0].Reason != ReasonUserUnknown {
		t.Errorf("kind %s results %+v, want one userunknown result for gone@example.org", r.Kind, r.Results)
	}
}

// TestAddressMention checks that a notice line names an address only as
// a whole: the status of bob@x.example is not b@x.example's.
func TestAddressMention(t *testing.T) {
	text := "550 5.1.1 <bob@x.example>: user unknown\n550 5.2.2 b@x.example: mailbox full\n"
	n := newNoticeLines(strings.ToLower(text), text)
	for _, c := range []struct{ rcpt, status string }{
		{"b@x.example", "5.2.2"},
		{"bob@x.example", "5.1.1"},
		{"ob@x.example", ""},
		{"b@x.ex", ""},
	} {
		if got := statusNear(n, c.rcpt, 0); got != c.status {
			t.Errorf("statusNear(%q) = %q, want %q", c.rcpt, got, c.status)
		}
	}
	for _, c := range []struct{ line, addr string }{
		{"to: b@x.example.", "b@x.example"},
		{"(b@x.example)", "b@x.example"},
		{"\"b@x.example\"", "b@x.example"},
		{"delivery to 'b@x.example' failed", "b@x.example"},
	} {
		if addressIndex(c.line, c.addr) < 0 {
			t.Errorf("addressIndex(%q, %q) = -1, want a match", c.line, c.addr)
		}
	}
	if i := addressIndex("'b@x.example", "b@x.example"); i >= 0 {
		t.Errorf("addressIndex of b@x.example in a local part beginning with ' = %d, want -1", i)
	}
}

// TestQuotedRecipient checks that a text notice naming the recipient in
// single quotes yields the address without them, and its diagnostic.
func TestQuotedRecipient(t *testing.T) {
	for _, named := range []string{"'it.is@x.example'", "rcpt='it.is@x.example'"} {
		raw := "From: postmaster@mx.example.net\nTo: bounces@example.com\nSubject: Undeliverable: News\n\n" +
			"Message delivery to " + named + " failed permanently.\nThe remote host said:\n552 5.2.2 Mailbox quota exceeded\n"
		rep, err := New(Limits{}).Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range rep.Results {
			got = append(got, x.Recipient+" "+x.Status+" "+x.Reason)
		}
		if want := []string{"it.is@x.example 5.2.2 mailboxfull"}; !slices.Equal(got, want) {
			t.Errorf("%s: results %q, want %q", named, got, want)
		}
	}
	// An apostrophe inside a quoted local part stays: the quote that
	// opens is the first one.
	if got := unquoteAddress("to 'o'brien@x.example'", 3, 21); got != "o'brien@x.example" {
		t.Errorf("unquoteAddress = %q, want o'brien@x.example", got)
	}
}

// TestDelayedConnectionTimeout checks that a connection timeout is a
// network error while the message is still queued, and that a failure
// after it (the queue given up) stays expired.
func TestDelayedConnectionTimeout(t *testing.T) {
	tbl, err := builtinTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ action, want string }{{"delayed", ReasonNetworkError}, {"failed", ReasonExpired}} {
		x := &Result{Action: c.action, Status: "4.4.1", Diagnostic: "Deferred: Connection timed out with mx.x.example."}
		if got, rule := reasonOf(x, "", tbl); got != c.want {
			t.Errorf("%s: reason %s (rule %s), want %s", c.action, got, rule, c.want)
		}
	}
}

// TestTextNoticeReasonPerRecipient checks a text notice that lists the
// failed recipients each with its reason indented under it and no reply
// code (Exim's local and routing failures): each recipient's diagnostic
// is its own reason, not the lines of the recipients after it.
func TestTextNoticeReasonPerRecipient(t *testing.T) {
	raw := "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nTo: b+tok@bounces.example.com\n" +
		"Subject: Mail delivery failed: returning message to sender\n\n" +
		"This message was created automatically by mail delivery software.\n\n" +
		"A message that you sent could not be delivered to one or more of its\n" +
		"recipients. This is a permanent error. The following address(es) failed:\n\n" +
		"  gone@example.org\n    Unrouteable address\n" +
		"  full@example.org\n    mailbox is full: retry timeout exceeded\n" +
		"  far@example.net\n    retry timeout exceeded\n"
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"gone@example.org": ReasonHostUnknown, "full@example.org": ReasonMailboxFull, "far@example.net": ReasonExpired}
	if len(r.Results) != len(want) {
		t.Fatalf("%d results %+v, want %d", len(r.Results), r.Results, len(want))
	}
	for _, x := range r.Results {
		if want[x.Recipient] != x.Reason {
			t.Errorf("%s: reason %s (diagnostic %q), want %s", x.Recipient, x.Reason, x.Diagnostic, want[x.Recipient])
		}
	}
}

// TestAttachedDetails checks that a short notice takes the failed
// recipient from the details part after it, and never from a returned
// original that a server sends as a plain-text part, or that follows the
// details after a copy marker.
func TestAttachedDetails(t *testing.T) {
	const original = "From: news@example.com\nTo: gone@example.org\nSubject: News\nMessage-ID: <1@example.com>\n\n" +
		"Write to carol@example.net; we do not accept spam.\n"
	for _, c := range []struct{ name, second, want string }{
		{"details part", "<gone@example.org>: 550 5.1.1 user unknown\n", "gone@example.org userunknown"},
		{"details, then the original", "<gone@example.org>: 550 5.1.1 user unknown\n\n--- Original message ---\n" + original, "gone@example.org userunknown"},
		{"the original as text", original, "gone@example.org undefined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := "From: MAILER-DAEMON@mx.example.net\nTo: bounces@example.com\nSubject: Undelivered Mail Returned to Sender\n" +
				"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n" +
				"--b\nContent-Type: text/plain\n\nYour message could not be delivered. Details are attached.\n" +
				"\n--b\nContent-Type: text/plain\n\n" + c.second + "\n--b--\n"
			rep, err := New(Limits{}).Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range rep.Results {
				got = append(got, x.Recipient+" "+x.Reason)
			}
			if want := []string{c.want}; !slices.Equal(got, want) {
				t.Errorf("results %q, want %q", got, want)
			}
		})
	}
}

// TestTextNoticeMultiLineReply checks that a diagnostic quoting a
// multi-line SMTP reply (RFC 5321 §4.2.1) keeps all its lines: Exim's
// sender callout quotes the sender's unknown user first and says what it
// is about on the last line ("550 Sender verify failed"), so the refusal
// is of the sender, not an unknown recipient.
func TestTextNoticeMultiLineReply(t *testing.T) {
	raw := "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nTo: b+tok@bounces.example.com\n" +
		"Subject: Mail delivery failed: returning message to sender\n\n" +
		"A message that you sent could not be delivered to one or more of its\n" +
		"recipients. This is a permanent error. The following address(es) failed:\n\n" +
		"  sales@example.org\n    host mx.example.org [192.0.2.1]\n" +
		"    SMTP error from remote mail server after RCPT TO:<sales@example.org>:\n" +
		"    550-Verification failed for <b+tok@bounces.example.com>\n    550-Called:   192.0.2.9\n" +
		"    550-Sent:     RCPT TO:<b+tok@bounces.example.com>\n" +
		"    550-Response: 550 5.1.1 <b+tok@bounces.example.com>: User unknown\n" +
		"    550 Sender verify failed\n"
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Results) != 1 {
		t.Fatalf("%d results %+v, want 1", len(r.Results), r.Results)
	}
	x := r.Results[0]
	if x.Recipient != "sales@example.org" || x.Reason != ReasonRejected || x.Hard || !strings.HasSuffix(x.Diagnostic, "550 Sender verify failed") {
		t.Errorf("%+v, want sales@example.org rejected soft, the diagnostic up to the reply's last line", x)
	}
}

// TestTextNoticeReasonAboveRecipients checks a text notice that states
// its one reason, with its code, above the list of recipients it applies
// to (MailMarshal): the recipient takes that code and that line.
func TestTextNoticeReasonAboveRecipients(t *testing.T) {
	raw := "From: Mail Delivery System <postmaster@example.org>\nTo: b+tok@bounces.example.com\n" +
		"Subject: Undeliverable Mail\n\nYour message:\n\n   Subject: News\n\n" +
		"Could not be delivered because of\n\n552 5.2.2 Mailbox size limit exceeded\n\n" +
		"The following recipients were affected:\n    full@example.org\n\nAdditional Information\n" +
		"======================\n"
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Results) != 1 {
		t.Fatalf("%d results %+v, want 1", len(r.Results), r.Results)
	}
	if x := r.Results[0]; x.Recipient != "full@example.org" || x.Status != "5.2.2" || x.Reason != ReasonMailboxFull || x.Diagnostic != "552 5.2.2 Mailbox size limit exceeded" {
		t.Errorf("%+v, want full@example.org 5.2.2 mailboxfull from the line above the list", x)
	}
	// Two different codes in the notice: neither is taken for a recipient
	// whose own lines name none.
	two := strings.Replace(raw, "Your message:", "Your message (first attempt: 451 4.3.0 try later):", 1)
	r, err = Parse([]byte(two))
	if err != nil {
		t.Fatal(err)
	}
	if x := r.Results[0]; x.Status == "5.2.2" {
		t.Errorf("%+v: took one of two codes", x)
	}
	// A number shaped like a status in a quoted subject is no status, and
	// a reason stated beside the recipient stays.
	quoted := "From: Mail Delivery System <postmaster@example.org>\nTo: b+tok@bounces.example.com\n" +
		"Subject: Undeliverable Mail\n\nYour message\n\n  Subject: Upgrade to release 5.1.1 today\n\n" +
		"was not delivered to:\n\n  ann@dest.example: mailbox full\n"
	r, err = Parse([]byte(quoted))
	if err != nil {
		t.Fatal(err)
	}
	if x := r.Results[0]; x.Reason != ReasonMailboxFull || x.Hard {
		t.Errorf("%+v: want mailboxfull, soft", x)
	}
}

// TestPowerMTABounceCategory checks that PowerMTA's own bounce category
// (X-PowerMTA-BounceCategory) names the reason where it cannot flip hard
// and soft against the rules (both soft, or the rules found nothing),
// that "other" leaves the rules' reason, that a delay stays one, and
// that the rule id says which decided.
func TestPowerMTABounceCategory(t *testing.T) {
	const bulk, vague = "550 this mailbox does not accept bulk mail", "550 see https://help.example.net/"
	const greylisted = "450 4.2.0 <a@example.org>: mailbox unavailable (greylisted)"
	for _, c := range []struct{ category, action, status, diag, reason, rule string }{
		{"policy-related", "failed", "5.0.0", bulk, ReasonPolicyViolation, "category:policy-related"},
		{"bad-mailbox", "failed", "5.0.0", bulk, ReasonSpamDetected, "diagnostic:spamdetected:bulk mail"},
		{"bad-mailbox", "failed", "5.0.0", vague, ReasonUserUnknown, "category:bad-mailbox"},
		{"bad-mailbox", "failed", "4.2.0", greylisted, "", ""},
		{"bad-mailbox", "delayed", "4.0.0", vague, "", ""},
		{"other", "failed", "5.0.0", bulk, ReasonSpamDetected, "diagnostic:spamdetected:bulk mail"},
	} {
		raw := "From: <mailer-daemon@pmta.example.com>\nTo: b+tok@bounces.example.com\nSubject: Delivery report\n" +
			"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
			"--b\nContent-Type: text/plain\n\nDelivery failed.\n\n--b\nContent-Type: message/delivery-status\n\n" +
			"Reporting-MTA: dns; pmta.example.com\n\nFinal-Recipient: rfc822;a@example.org\nAction: " + c.action + "\n" +
			"Status: " + c.status + "\nDiagnostic-Code: smtp;" + c.diag + "\n" +
			"X-PowerMTA-BounceCategory: " + c.category + "\n\n--b--\n"
		r, err := Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Results) != 1 {
			t.Fatalf("%s: %d results", c.category, len(r.Results))
		}
		x := r.Results[0]
		if c.reason == "" { // the category must not decide, nor make it hard
			if strings.HasPrefix(x.Rule, "category:") || x.Hard {
				t.Errorf("%s %s %q: %s by %s hard %v, want the rules' soft result", c.category, c.action, c.diag, x.Reason, x.Rule, x.Hard)
			}
			continue
		}
		if x.Reason != c.reason || x.Rule != c.rule || x.Hard != IsHard(c.reason, x.Status) {
			t.Errorf("%s %q: %s by %s hard %v, want %s by %s", c.category, c.diag, x.Reason, x.Rule, x.Hard, c.reason, c.rule)
		}
	}
}

// TestAutoresponderHeaderNoBounce checks that an autoresponder's own
// header (X-Autoreply) keeps a message whose text speaks of undeliverable
// mail from being taken for a bounce.
func TestAutoresponderHeaderNoBounce(t *testing.T) {
	raw := "From: Helpdesk <help@example.org>\nTo: b+tok@bounces.example.com\nSubject: [Ticket #1] Received\n" +
		"X-Autoreply: yes\n\nIf your mail was undeliverable elsewhere, please do not resend it.\n"
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindAutoReply {
		t.Errorf("kind %s, want %s", r.Kind, KindAutoReply)
	}
}
