package bounce

import (
	"strings"
)

// verpHeaders are the fields of the report itself that may carry the VERP
// address it was delivered to: a DSN goes to the original's envelope
// sender (RFC 3464 §2; RFC 5321 §4.5.5), an auto-reply to its Return-Path
// (RFC 3834 §4), and the receiving MTA records that address in one of
// these.
var verpHeaders = []string{"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"}

// refs collects what the message points at.
func (m *msg) refs() Refs {
	r := Refs{
		VERPToken:  m.verpToken(),
		MailgateID: strings.TrimSpace(m.origGet("X-Mailgate-Id")),
		InReplyTo:  firstMsgID(m.h.Get("In-Reply-To")),
		References: msgIDs(m.h.Get("References")),
	}
	if id := firstMsgID(m.origGet("Message-Id")); id != "" {
		r.OriginalMessageID = id
	}
	return r
}

// verpToken returns TOKEN from the first b+TOKEN@domain address found, in
// order:
//   - the VERP headers of the report itself (verpHeaders);
//   - the Original-Mail-From field of an ARF report, the envelope sender
//     of the reported message (RFC 5965 §3.2);
//   - the Return-Path of the returned original: the text/rfc822-headers or
//     message/rfc822 part of a DSN (RFC 3464 §2, RFC 3462 §2) or of an ARF
//     report (RFC 5965 §2 item c), or the copy a non-standard bounce quotes
//     inline. The delivering MTA wrote the envelope sender there (RFC 5321
//     §4.4).
//
// The returned original's own Delivered-To, X-Original-To and To are not
// searched: they name the original's recipient, never its envelope
// sender, so mail from this gateway never has a token there.
func (m *msg) verpToken() string {
	for _, name := range verpHeaders {
		for _, v := range m.h.Values(name) {
			if tok := verpFrom(v); tok != "" {
				return tok
			}
		}
	}
	if p := m.t.first("message/feedback-report"); p != nil {
		for _, v := range arfValues(p.body, "original-mail-from") {
			if tok := verpFrom(v); tok != "" {
				return tok
			}
		}
	}
	if m.orig != nil {
		return verpFrom(m.orig.Get("Return-Path"))
	}
	return ""
}

// verpFrom extracts TOKEN from "b+TOKEN@domain" among the addresses of v.
func verpFrom(v string) string {
	for _, a := range headerAddresses(v) {
		local, _, ok := strings.Cut(a, "@")
		if !ok || len(local) < 3 || !strings.EqualFold(local[:2], "b+") {
			continue
		}
		return local[2:]
	}
	return ""
}

// firstMsgID returns the first <id> of a header value, without brackets.
func firstMsgID(v string) string {
	ids := msgIDs(v)
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// msgIDs returns the <id>s of a header value (RFC 5322 §3.6.4), without
// brackets; a bare id without brackets is accepted when it is the only
// token.
func msgIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" && !strings.ContainsAny(id, " \t") {
			out = append(out, id)
		}
		v = v[i+j+1:]
	}
	if out == nil {
		if f := strings.Fields(v); len(f) == 1 && strings.Contains(f[0], "@") {
			out = append(out, f[0])
		}
	}
	return out
}
