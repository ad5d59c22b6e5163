package bounce

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseDSNFields covers the layouts of delivery-status bodies met in
// the wild.
func TestParseDSNFields(t *testing.T) {
	tests := []struct {
		name string
		body string
		want dsnFields
	}{
		{
			name: "RFC 3464 blocks",
			body: "Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n\nFinal-Recipient: rfc822; b@example.org\nAction: delayed\nStatus: 4.4.1\n",
			want: dsnFields{
				message:    fields{"reporting-mta": "dns; mx.example.net"},
				recipients: []fields{{"final-recipient": "rfc822; a@example.org", "action": "failed", "status": "5.1.1"}, {"final-recipient": "rfc822; b@example.org", "action": "delayed", "status": "4.4.1"}},
			},
		},
		{
			name: "no blank lines between recipients, CRLF, folding",
			body: "Reporting-MTA: dns; mx\r\nFinal-Recipient: rfc822; a@example.org\r\nAction: failed\r\nDiagnostic-Code: smtp; 550 5.2.2\r\n  mailbox full\r\nFinal-Recipient: rfc822; b@example.org\r\nAction: failed\r\n",
			want: dsnFields{
				message:    fields{"reporting-mta": "dns; mx"},
				recipients: []fields{{"final-recipient": "rfc822; a@example.org", "action": "failed", "diagnostic-code": "smtp; 550 5.2.2 mailbox full"}, {"final-recipient": "rfc822; b@example.org", "action": "failed"}},
			},
		},
		{
			name: "a repeated Remote-MTA is ignored, the Diagnostic-Code after it kept",
			body: "Final-Recipient: rfc822; r@example.org\nAction: failed\nStatus: 5.0.0\nRemote-MTA: dns; mx1.example.org\nRemote-MTA: dns; mx2.example.org\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n",
			want: dsnFields{
				message: fields{},
				recipients: []fields{{"final-recipient": "rfc822; r@example.org", "action": "failed", "status": "5.0.0",
					"remote-mta": "dns; mx1.example.org", "diagnostic-code": "smtp; 550 5.1.1 user unknown"}},
			},
		},
		{
			name: "Remote-MTA before and after the recipient in one block",
			body: "Reporting-MTA: dns; mx\nRemote-MTA: dns; mx1.example.org\nFinal-Recipient: rfc822; r@example.org\nAction: failed\nStatus: 5.0.0\nRemote-MTA: dns; mx2.example.org\nDiagnostic-Code: smtp; 552 5.2.2 mailbox full\n",
			want: dsnFields{
				message: fields{"reporting-mta": "dns; mx"},
				recipients: []fields{{"final-recipient": "rfc822; r@example.org", "action": "failed", "status": "5.0.0",
					"remote-mta": "dns; mx1.example.org", "diagnostic-code": "smtp; 552 5.2.2 mailbox full"}},
			},
		},
		{
			name: "a repeated Action without a recipient after it completes the recipient",
			body: "Final-Recipient: rfc822; r@example.org\nAction: failed\nAction: delayed\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n",
			want: dsnFields{
				message:    fields{},
				recipients: []fields{{"final-recipient": "rfc822; r@example.org", "action": "failed", "diagnostic-code": "smtp; 550 5.1.1 user unknown"}},
			},
		},
		{
			name: "original before final in one block",
			body: "Original-Recipient: rfc822; A@example.org\nFinal-Recipient: rfc822; a@example.org\nAction: failed\n",
			want: dsnFields{
				message:    fields{},
				recipients: []fields{{"original-recipient": "rfc822; A@example.org", "final-recipient": "rfc822; a@example.org", "action": "failed"}},
			},
		},
		{
			name: "next recipient in SES order, address last, no blank line",
			body: "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 mailbox full\nFinal-Recipient: rfc822; b@example.org\n",
			want: dsnFields{
				message: fields{},
				recipients: []fields{{"final-recipient": "rfc822; a@example.org", "action": "failed", "status": "5.1.1"},
					{"final-recipient": "rfc822; b@example.org", "action": "failed", "status": "5.2.2", "diagnostic-code": "smtp; 552 mailbox full"}},
			},
		},
		{
			name: "Remote-MTA and Last-Attempt-Date before Final-Recipient in each block",
			body: "Reporting-MTA: dns; out.example.net\n\n" +
				"Remote-MTA: dns; mx.a.example\nLast-Attempt-Date: Tue, 10 Sep 2024 08:04:10 +0000\nFinal-Recipient: rfc822; a@a.example\nAction: failed\nStatus: 5.1.1\n\n" +
				"Remote-MTA: dns; mx.b.example\nLast-Attempt-Date: Tue, 10 Sep 2024 08:04:12 +0000\nFinal-Recipient: rfc822; b@b.example\nAction: failed\nStatus: 4.2.2\n",
			want: dsnFields{
				message: fields{"reporting-mta": "dns; out.example.net"},
				recipients: []fields{
					{"remote-mta": "dns; mx.a.example", "last-attempt-date": "Tue, 10 Sep 2024 08:04:10 +0000", "final-recipient": "rfc822; a@a.example", "action": "failed", "status": "5.1.1"},
					{"remote-mta": "dns; mx.b.example", "last-attempt-date": "Tue, 10 Sep 2024 08:04:12 +0000", "final-recipient": "rfc822; b@b.example", "action": "failed", "status": "4.2.2"},
				},
			},
		},
		{
			name: "next recipient's Remote-MTA first, no blank line",
			body: "Final-Recipient: rfc822; a@a.example\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; mx.a.example\nRemote-MTA: dns; mx.b.example\nFinal-Recipient: rfc822; b@b.example\nAction: delayed\nStatus: 4.4.1\n",
			want: dsnFields{
				message: fields{},
				recipients: []fields{
					{"final-recipient": "rfc822; a@a.example", "action": "failed", "status": "5.1.1", "remote-mta": "dns; mx.a.example"},
					{"remote-mta": "dns; mx.b.example", "final-recipient": "rfc822; b@b.example", "action": "delayed", "status": "4.4.1"},
				},
			},
		},
		{
			name: "junk lines ignored",
			body: "this is not a field\nFinal-Recipient: rfc822; a@example.org\n---\nStatus: 5.0.0\n",
			want: dsnFields{
				message:    fields{},
				recipients: []fields{{"final-recipient": "rfc822; a@example.org", "status": "5.0.0"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseDSNFields([]byte(tt.body))
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(dsnFields{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestDSNResults checks the per-recipient fields become results (RFC 3464
// §2.3, RFC 6533 §3).
func TestDSNResults(t *testing.T) {
	d := parseDSNFields([]byte("Remote-MTA: dns; mx.example.org\n\n" +
		"Final-Recipient: utf-8; \\x{7528}\\x{6237}@example.jp\nAction: Failed (permanent)\nStatus: 5.1.1 (bad mailbox)\nDiagnostic-Code: smtp; 550-5.1.1 no such\n user\n\n" +
		"Final-Recipient: rfc822; pipe@example.org\nAction: deliverable\nStatus: 2.0.0\nDiagnostic-Code: X-Unix; delivered to command\n"))
	got, local := dsnResults(d)
	want := []Result{
		{Recipient: "用户@example.jp", Action: "failed", Status: "5.1.1", ReplyCode: 550, Diagnostic: "550-5.1.1 no such user", RemoteMTA: "mx.example.org"},
		{Recipient: "pipe@example.org", Action: "delivered", Status: "2.0.0", Diagnostic: "delivered to command", RemoteMTA: "mx.example.org"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false, true}, local); diff != "" {
		t.Errorf("local (-want +got):\n%s", diff)
	}
}

// TestStatusScanners checks the RFC 3463 and RFC 5321 code scanners.
func TestStatusScanners(t *testing.T) {
	tests := []struct {
		in     string
		status string
		code   int
	}{
		{"550 5.1.1 <a@b>: User unknown", "5.1.1", 550},
		{"smtp;550 5.2.2 mailbox full", "5.2.2", 550},
		{"452-4.2.2 over quota", "4.2.2", 452},
		{"lotus smtp mta v4.6.1", "", 0},
		{"host 192.0.2.153 said", "", 0},
		{"out: 250 2.1.5 ok out: 451 4.3.0 queue file write error", "4.3.0", 451},
		{"#5.1.10 null mx", "5.1.10", 0},
		{"error_code :421, host not reachable", "", 421},
		{"version 5.1.1.2 beta", "", 0},
		{"Status: 2.0.0", "2.0.0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := findStatus(tt.in); got != tt.status {
				t.Errorf("findStatus = %q, want %q", got, tt.status)
			}
			if got := findReplyCode(tt.in); got != tt.code {
				t.Errorf("findReplyCode = %d, want %d", got, tt.code)
			}
		})
	}
}

// TestIsHard checks the definition of a hard bounce.
func TestIsHard(t *testing.T) {
	tests := []struct {
		reason, status string
		want           bool
	}{
		{ReasonUserUnknown, "5.1.1", true},
		{ReasonHostUnknown, "5.1.2", true},
		{ReasonHasMoved, "5.1.6", true},
		{ReasonNotAccept, "5.1.10", true},
		{ReasonNotAccept, "4.0.0", false},
		{ReasonMailboxFull, "5.2.2", false},
		{ReasonFiltered, "5.0.0", false},
		{ReasonSpamDetected, "5.7.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.reason+"/"+tt.status, func(t *testing.T) {
			if got := IsHard(tt.reason, tt.status); got != tt.want {
				t.Errorf("IsHard = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDSNBlockWithoutAddress checks that a report block without a
// recipient address takes the one address the notice names that no other
// block names, and that a block left without one (a message-level block,
// or a duplicate) is no result.
func TestDSNBlockWithoutAddress(t *testing.T) {
	p := New(Limits{})
	for _, c := range []struct {
		name, text, blocks string
		want               []string
	}{
		{"the other address", "Delivery to a@example.org and b@example.org failed.",
			"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n\nAction: failed\nStatus: 5.2.2\n",
			[]string{"a@example.org", "b@example.org"}},
		{"message-level block", "Delivery to a@example.org failed.",
			"Action: failed\nStatus: 5.0.0\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n",
			[]string{"a@example.org"}},
		{"several candidates", "Delivery to a@example.org, b@example.org and c@example.org failed.",
			"Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n\nAction: failed\nStatus: 5.2.2\n",
			[]string{"a@example.org"}},
		{"the only block", "Delivery to a@example.org failed.",
			"Action: failed\nStatus: 5.1.1\n",
			[]string{"a@example.org"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := "From: MAILER-DAEMON@mx.example.net\nTo: bounces@example.com\nSubject: Delivery Status Notification\n" +
				"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
				"--b\nContent-Type: text/plain\n\n" + c.text + "\n\n--b\nContent-Type: message/delivery-status\n\n" +
				"Reporting-MTA: dns; mx.example.net\n\n" + c.blocks + "\n--b--\n"
			rep, err := p.Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range rep.Results {
				got = append(got, x.Recipient)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("recipients (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInlineDSN checks that the delivery-status fields of a report with
// a broken MIME structure are found whatever the case of the part header.
func TestInlineDSN(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"Report.\nContent-Type: message/delivery-status\n\nStatus: 5.1.1\n--b--\n", "\nStatus: 5.1.1"},
		{"Report.\nContent-Type: Message/DeLIVERY-Status\nStatus: 5.1.1\n--b--\n", "Status: 5.1.1"},
		{"CONTENT-TYPE: MESSAGE/DELIVERY-STATUS\nStatus: 4.4.7\n", "Status: 4.4.7\n"},
		{"Content-Type: text/plain\n\nsee https://example.org/delivery-status\n", ""},
		{"/", ""},
		{"", ""},
	} {
		if got := string(inlineDSN(c.body)); got != c.want {
			t.Errorf("inlineDSN(%q) = %q, want %q", c.body, got, c.want)
		}
	}
}
