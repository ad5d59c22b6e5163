package bounce

import (
	"strings"
)

// verpHeaders are the fields of a returned message that may carry the VERP
// address the bounce was sent to.
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

// verpToken returns TOKEN from the first b+TOKEN@domain address in the VERP
// headers, then in the Return-Path of the returned original.
func (m *msg) verpToken() string {
	for _, name := range verpHeaders {
		for _, v := range m.h.Values(name) {
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
