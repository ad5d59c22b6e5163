package bounce

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStripReply covers quoting styles in isolation.
func TestStripReply(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"top posted", "Yes.\n\nOn Mon, 3 Mar 2025 at 10:15, A <a@example.com> wrote:\n> Question?\n", "Yes."},
		{"wrapped attribution", "Yes.\n\nOn Mon, Mar 3, 2025 at 10:15 AM Shop <\norders@example.com> wrote:\n\n> Q\n", "Yes."},
		{"inline", "> Q1?\nA1.\n> Q2?\nA2.\n", "A1.\nA2."},
		{"no quote", "Just text.\nThanks,\nAnna", "Just text.\nThanks,\nAnna"},
		{"signature", "Ok.\n\nAnna\n-- \nAnna Smith\nACME", "Ok.\n\nAnna"},
		{"mobile footer", "Ok.\n\nSent from my iPhone", "Ok."},
		{"german outlook", "Gut.\n\nVon: Shop <s@example.com>\nGesendet: Montag\nAn: x\nBetreff: y\n\nalt", "Gut."},
		{"french separator", "Bien.\n\n-----Message d'origine-----\nDe : x\nalt", "Bien."},
		{"what I wrote is not an attribution", "Here is what I wrote:\nthe plan.", "Here is what I wrote:\nthe plan."},
		{"crlf", "Fine.\r\n\r\n> old\r\n", "Fine."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, StripReply(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestHTMLToText covers the tag stripper.
func TestHTMLToText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"blocks", "<div>A</div><div>B</div>", "A\nB"},
		{"paragraphs", "<p>A</p><p>B</p>", "A\n\nB"},
		{"br and entities", "A&amp;B<br>C&nbsp;D", "A&B\nC D"},
		{"script and style dropped", "<style>p{}</style><script>x()</script>Hi", "Hi"},
		{"source whitespace", "<p>one\n   two</p>", "one two"},
		{"gmail quote removed", `Hi<div class="gmail_quote">old <div>nested</div> tail</div>`, "Hi"},
		{"apple quote removed", `Ok<blockquote type="cite"><blockquote type="cite">x</blockquote>y</blockquote>`, "Ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, htmlToText(dropHTMLQuotes(tt.in))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestVERPToken checks where the VERP token is looked for.
func TestVERPToken(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"to", "To: b+tok1@bounces.example.com\r\n\r\nx", "tok1"},
		{"delivered-to wins", "Delivered-To: b+tok2@bounces.example.com\r\nTo: b+other@bounces.example.com\r\n\r\nx", "tok2"},
		{"not verp", "To: bob+tag@example.com\r\n\r\nx", ""},
		{"returned return-path", "To: me@example.com\r\nContent-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nReturn-Path: <b+tok3@bounces.example.com>\r\n\r\n--b--\r\n", "tok3"},
		{"dsn returned message", dsnReturning("message/rfc822", "Return-Path: <b+tok4@bounces.example.com>\r\nTo: ann@example.org\r\n\r\nHello\r\n"), "tok4"},
		{"returned recipient fields are not the envelope", dsnReturning("message/rfc822",
			"Delivered-To: b+tok5@bounces.example.com\r\nTo: b+tok5@bounces.example.com\r\n\r\nHello\r\n"), ""},
		{"arf returned headers", arfReturning("", "text/rfc822-headers", "Return-Path: <b+tok6@bounces.example.com>\r\nTo: ann@example.org\r\n"), "tok6"},
		{"arf returned message", arfReturning("", "message/rfc822", "Return-Path: <b+tok7@bounces.example.com>\r\nTo: ann@example.org\r\n\r\nHello\r\n"), "tok7"},
		{"arf original-mail-from", arfReturning("Original-Mail-From: <b+tok8@bounces.example.com>\r\n", "text/rfc822-headers",
			"To: ann@example.org\r\n"), "tok8"},
		{"arf original-mail-from before return-path", arfReturning("Original-Mail-From: <b+tok9@bounces.example.com>\r\n",
			"message/rfc822", "Return-Path: <b+other@bounces.example.com>\r\n\r\nHello\r\n"), "tok9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if r.Refs.VERPToken != tt.want {
				t.Errorf("token = %q, want %q", r.Refs.VERPToken, tt.want)
			}
		})
	}
}

// dsnReturning is an RFC 3464 report delivered to a mailbox that is not a
// VERP address, returning original as a part of type ctype (RFC 3464 §2).
func dsnReturning(ctype, original string) string {
	return "From: MAILER-DAEMON@mx.example.org\r\nTo: bounces@bounces.example.com\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n" +
		"Final-Recipient: rfc822; ann@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" +
		"--b\r\nContent-Type: " + ctype + "\r\n\r\n" + original + "--b--\r\n"
}

// arfReturning is an RFC 5965 feedback report sent to a feedback-loop
// address, with extra fields in its message/feedback-report part (§3)
// and original as its third part, of type ctype (§2 item c).
func arfReturning(fields, ctype, original string) string {
	return "From: fbl@isp.example\r\nTo: fbl@shop.example\r\n" +
		"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n" +
		"--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n" + fields +
		"\r\n--b\r\nContent-Type: " + ctype + "\r\n\r\n" + original + "--b--\r\n"
}
