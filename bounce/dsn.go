package bounce

import (
	"bytes"
	"strconv"
	"strings"
)

// fields is one block of DSN or ARF fields, keyed by lower-case field name;
// the first occurrence of a name wins.
type fields map[string]string

// dsnFields is a parsed message/delivery-status body (RFC 3464 §2.1): the
// per-message fields and one block per recipient.
type dsnFields struct {
	message    fields
	recipients []fields
}

// parseDSNFields parses the body of a message/delivery-status or
// message/global-delivery-status part (RFC 3464 §2.1, RFC 6533 §3). Blocks
// are separated by blank lines; the fields before the first
// Final-Recipient or Original-Recipient are per-message fields (§2.2), and
// each recipient field opens a per-recipient block (§2.3) unless it
// completes the current one. Some MTAs omit the blank lines between
// recipients, hence the second rule (a recipient field naming the block's
// own address still completes it). A recipient's fields may come in any
// order (§2.3): Amazon SES writes Action, Status and Diagnostic-Code before
// Final-Recipient, others Remote-MTA or Last-Attempt-Date. So a
// per-recipient field that is not the current recipient's (the block has
// none open yet, or it already has that field: the next recipient
// starting, where no blank line separates them), and every one after it,
// is kept for the next recipient the block opens; when no recipient field
// follows, they complete the current recipient where it lacks them (a
// repeated Remote-MTA followed by the Diagnostic-Code); a
// block with an Action or Status and no recipient field at all is a
// recipient whose address the report left out, one with neither adds its
// fields to the per-message ones.
// Lines that are not fields are ignored. No library decodes these fields,
// hence this parser.
func parseDSNFields(body []byte) dsnFields {
	d := dsnFields{message: fields{}}
	for _, block := range splitBlocks(body) {
		var cur, pending fields
		open := false // cur may still take its other recipient field
		for _, kv := range parseFieldList(block) {
			name := kv[0]
			switch {
			case name == "final-recipient" || name == "original-recipient":
				if cur == nil || cur[name] != "" || !(open || sameRecipient(cur, kv[1])) || pending != nil {
					cur = fields{}
					d.recipients = append(d.recipients, cur)
				}
				for k, v := range pending {
					cur[k] = v
				}
				pending, open = nil, true
			case isRecipientField(name) && (cur == nil || cur[name] != "" || pending != nil):
				if pending == nil {
					pending = fields{}
				}
				if _, ok := pending[name]; !ok {
					pending[name] = kv[1]
				}
				continue
			case name == "action" || name == "status":
				open = false
			}
			target := d.message
			if cur != nil {
				target = cur
			}
			if _, ok := target[name]; !ok {
				target[name] = kv[1]
			}
		}
		switch {
		case cur != nil:
			// Fields kept for a next recipient that never came (a field
			// repeated, then no recipient field): the block's recipient's,
			// where it lacks them.
			for k, v := range pending {
				if _, ok := cur[k]; !ok {
					cur[k] = v
				}
			}
		case pending["action"] != "" || pending["status"] != "":
			d.recipients = append(d.recipients, pending) // a recipient block without its address
		default:
			// No recipient: a per-message block that also names the
			// Remote-MTA (or the like) for every recipient.
			for k, v := range pending {
				if _, ok := d.message[k]; !ok {
					d.message[k] = v
				}
			}
		}
	}
	return d
}

// sameRecipient reports whether a recipient field's value names the
// address the block's other recipient field names: an Original-Recipient
// written after the block's Action and Status still completes it.
func sameRecipient(f fields, value string) bool {
	other := f["final-recipient"]
	if other == "" {
		other = f["original-recipient"]
	}
	a := cleanAddress(typedValue(value))
	return a != "" && strings.EqualFold(a, cleanAddress(typedValue(other)))
}

// isRecipientField reports the per-recipient fields of RFC 3464 §2.3
// other than the recipient's address: the ones that may come before it.
func isRecipientField(name string) bool {
	switch name {
	case "action", "status", "diagnostic-code", "remote-mta", "last-attempt-date", "will-retry-until", "final-log-id":
		return true
	}
	return false
}

// splitBlocks splits b at blank lines (LF or CRLF).
func splitBlocks(b []byte) [][]byte {
	var blocks [][]byte
	var cur [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			if len(cur) > 0 {
				blocks = append(blocks, bytes.Join(cur, []byte("\n")))
				cur = cur[:0]
			}
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		blocks = append(blocks, bytes.Join(cur, []byte("\n")))
	}
	return blocks
}

// parseFieldList parses "Name: value" lines with RFC 5322 §2.2.3 folding
// into [lower-case name, value] pairs, in order. A line that is no field
// right after a Diagnostic-Code continues it: some MTAs wrap the remote
// answer without folding it.
func parseFieldList(block []byte) [][2]string {
	var out [][2]string
	for _, raw := range bytes.Split(block, []byte("\n")) {
		line := string(raw)
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(out) > 0 {
			last := &out[len(out)-1]
			last[1] = strings.TrimSpace(last[1] + " " + strings.TrimSpace(line))
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			if n := len(out); n > 0 && out[n-1][0] == "diagnostic-code" {
				// The remote answer wrapped without folding: its words go on.
				out[n-1][1] = strings.TrimSpace(out[n-1][1] + " " + strings.TrimSpace(line))
			}
			continue
		}
		out = append(out, [2]string{name, strings.TrimSpace(value)})
	}
	return out
}

// typedValue strips the address-type or diagnostic-type prefix
// ("rfc822;", "smtp;", "dns;", RFC 3464 §2.3.2, §2.3.6) from a field value,
// and decodes RFC 6533 §3 utf-8-addr-xtext escapes (\x{HEX}).
func typedValue(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 && i < 16 && !strings.ContainsAny(v[:i], " <@") {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if strings.Contains(v, `\x{`) {
		v = unescapeXText(v)
	}
	return v
}

// unescapeXText decodes the \x{HEX} escapes of RFC 6533 §3 embedded-unicode.
func unescapeXText(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		n, err := strconv.ParseUint(s[i+3:i+j], 16, 32)
		if err != nil || n > 0x10FFFF {
			b.WriteString(s[i : i+j+1])
		} else {
			b.WriteRune(rune(n))
		}
		s = s[i+j+1:]
	}
}

// dsnResults turns the per-recipient blocks into results (RFC 3464 §2.3).
// Reasons are not set here. local[i] reports that result i failed in a
// local delivery program (diagnostic type X-Unix, §2.3.6).
func dsnResults(d dsnFields) (out []Result, local []bool) {
	for _, f := range d.recipients {
		rcpt := cleanAddress(typedValue(f["final-recipient"]))
		if rcpt == "" {
			rcpt = cleanAddress(typedValue(f["original-recipient"]))
		}
		r := statedResult(normalizeAction(f["action"]), f["status"], f["diagnostic-code"])
		r.Recipient = rcpt
		r.RemoteMTA = typedValue(f["remote-mta"])
		if r.RemoteMTA == "" {
			r.RemoteMTA = typedValue(d.message["remote-mta"])
		}
		out = append(out, r)
		local = append(local, strings.HasPrefix(strings.ToLower(strings.TrimSpace(f["diagnostic-code"])), "x-unix"))
	}
	return out, local
}

// statedResult is a result as a report states it, before classification:
// the action, the status code found in the Status field (RFC 3464
// §2.3.4) and the Diagnostic-Code (§2.3.6) on one line without its type
// ("smtp;"), with the SMTP reply code found in it.
func statedResult(action, status, diagnostic string) Result {
	diag := oneLine(typedValue(diagnostic))
	return Result{Action: action, Status: findStatus(status), Diagnostic: diag, ReplyCode: findReplyCode(diag)}
}

// normalizeAction lower-cases the action and drops comments such as
// "failed (bad destination mailbox address)".
func normalizeAction(a string) string {
	a = strings.ToLower(strings.TrimSpace(a))
	if i := strings.IndexAny(a, " (;"); i >= 0 {
		a = a[:i]
	}
	switch a {
	case "failed", "delayed", "delivered", "relayed", "expanded":
		return a
	case "failure", "undeliverable":
		return "failed"
	case "deliverable": // Postfix address verification (sendmail -bv)
		return "delivered"
	case "":
		return ""
	}
	return a
}

// oneLine collapses runs of white space into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
