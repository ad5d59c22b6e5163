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
