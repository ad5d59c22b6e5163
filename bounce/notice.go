package bounce

import (
	"strings"
)

// copyMarkers start the copy of the returned original inside the text of a
// non-standard bounce (lower case).
var copyMarkers = []string{
	"------ this is a copy of the message",
	"--- below this line is a copy of the message",
	"----- original message -----",
	"original message follows",
	"----- unsent message follows",
	"--- the header of the original message is following",
	"------ original message headers",
	"original message headers:",
	"----- message header follows",
	"message headers follow",
	"------- returned message",
	"----- the following is the header",
	"a copy of the original message below this line",
	"--- original message ---",
	"-----original message-----",
	"returned message follows",
	"---- start of returned message",
	"--- message header follows",
	"content-type: message/rfc822",
	"------ this is a copy of your message",
	"below is a copy of the original message",
	"the original message was:",
	"original-message-id",
	"--- original mail ---",
	"original mail as follows:", // fml
}

// copyMarkerKeys are the phraseKeys of copyMarkers (read only).
var copyMarkerKeys = phraseKeyList(copyMarkers)

// originalMarker returns the index in s of the first copy marker, or -1.
// Only the first 16 KiB are searched: notices are short.
func originalMarker(s string) int {
	lower := strings.ToLower(s[:min(len(s), 16<<10)])
	var set bigramSet
	set.add(lower)
	best, hay := -1, lower
	for j, mk := range copyMarkers {
		if !set.mayContain(copyMarkerKeys[j]) {
			continue
		}
		if i := strings.Index(hay, mk); i >= 0 && (best < 0 || i < best) {
			best = i
			hay = lower[:min(len(lower), i+64)] // later markers must start earlier
		}
	}
	return best
}

// noticeText returns the lower-cased human-readable notice, cut before the
// copy of the original message.
func (m *msg) noticeText() string {
	return m.notice
}

// lines returns the notice split into lines.
func (m *msg) lines() noticeLines {
	return newNoticeLines(m.notice, m.noticeUC)
}

// noticeLines is a notice split into lines, in lower case for matching and
// in the original case for quoting.
type noticeLines struct {
	lower, orig []string
}

func newNoticeLines(lower, orig string) noticeLines {
	return noticeLines{strings.Split(lower, "\n"), strings.Split(orig, "\n")}
}

// diagnosticNear returns the text of the notice that explains the failure
// for rcpt: from the first line at or after the recipient's first mention
// that carries an SMTP reply code or status code, with its continuation
// lines; else the rest of the recipient's line; else the lines under it.
func diagnosticNear(n noticeLines, rcpt string) string {
	start := 0
	if rcpt != "" {
		start = mentionLine(n.lower, strings.ToLower(rcpt))
	}
	bare := ""
	for i := start; i < len(n.lower) && i < start+25; i++ {
		if l := strings.TrimSpace(n.lower[i]); l != "" && (findReplyCode(l) != 0 || findStatus(l) != "") {
			d := n.continued(i)
			if !endsWithCode(d) {
				return d
			}
			if bare == "" {
				bare = d // "Status code: 550 5.1.10": a later line may say what it means
			}
		}
	}
	if bare != "" || rcpt == "" {
		return bare
	}
	if rest := n.afterAddress(start, strings.ToLower(rcpt)); len(strings.Fields(rest)) >= 2 && !strings.HasPrefix(strings.ToLower(rest), "on ") {
		return rest
	}
	return n.nextLines(start, strings.ToLower(rcpt))
}

// endsWithCode reports whether a diagnostic ends with its reply or
// status code, explaining nothing ("Status code: 550 5.1.10").
func endsWithCode(d string) bool {
	f := strings.Fields(d)
	if len(f) == 0 {
		return true
	}
	last := strings.Trim(f[len(f)-1], "()[]<>:;,.'\"")
	return findStatus(last) == last || findReplyCode(last) != 0 && len(last) == 3
}

// mentionLine returns the index of the first line naming rcpt, or 0.
func mentionLine(lines []string, rcpt string) int {
	for i, l := range lines {
		if addressIndex(l, rcpt) >= 0 {
			return i
		}
	}
	return 0
}

// addressIndex returns the index of the first occurrence in lower-case
// line of the lower-case address addr that stands as a whole address (no
// letter, digit or other address character right before it, no letter or
// digit right after), or -1: b@x.com is not named by bob@x.com.
func addressIndex(line, addr string) int {
	for off := 0; addr != ""; {
		i := strings.Index(line[off:], addr)
		if i < 0 {
			return -1
		}
		i += off
		end := i + len(addr)
		if (i == 0 || !isAddressByte(line[i-1]) || quotedAt(line, i, end)) && (end == len(line) || !isAddressByte(line[end]) || line[end] == '.' || quotedAt(line, i, end)) {
			return i
		}
		off = i + 1
	}
	return -1
}

// isAddressByte reports a byte that may occur inside an address: a
// letter, a digit or one of RFC 5322's atext specials and the dot.
func isAddressByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c >= 0x80 || strings.IndexByte("!#$%&'*+-/=?^_`{|}~.@", c) >= 0
}

// continued returns line i joined with the lines that continue it: the
// following non-blank lines up to a separator, a new item or four lines.
// A line indented deeper than line i continues it even when it looks like
// a new item: Postfix wraps "<a@b>: host ... said: 550 5.7.1" and goes on
// with an indented "    <a@b>: Relay access denied".
//
// The lines of a multi-line SMTP reply (RFC 5321 §4.2.1: "550-..." up to
// the last line "550 ...") all continue it, however many there are up to
// maxReplyLines: Exim quotes a callout's whole answer ("550-Verification
// failed for <a@b>", "550-Called: ...", "550 Sender verify failed") and
// its last line says what the first ones are about.
func (n noticeLines) continued(i int) string {
	out := []string{strings.TrimSpace(n.orig[i])}
	ind := indentOf(n.orig[i])
	code := replyContinues(strings.TrimSpace(n.lower[i]), "")
	for j := i + 1; j < len(n.lower) && (j <= i+3 || code != "" && j < i+maxReplyLines); j++ {
		l := strings.TrimSpace(n.lower[j])
		if code != "" {
			if next := replyContinues(l, code); next != "" || strings.HasPrefix(l, code+" ") {
				out = append(out, strings.TrimSpace(n.orig[j]))
				code = next
				continue
			}
			code = ""
		}
		if j > i+3 || l == "" || isSeparator(l) || startsNewItem(l) && indentOf(n.orig[j]) <= ind {
			break
		}
		out = append(out, strings.TrimSpace(n.orig[j]))
	}
	return oneLine(strings.Join(out, " "))
}

// maxReplyLines bounds the lines of one multi-line reply that continued
// joins.
const maxReplyLines = 12

// replyContinues returns the reply code of a lower-case line that starts
// a multi-line SMTP reply's non-last line ("550-text", RFC 5321 §4.2.1),
// "" for any other line. When code is given, only that code counts: the
// lines of one reply share it.
func replyContinues(l, code string) string {
	if len(l) < 4 || l[3] != '-' || (l[0] != '4' && l[0] != '5') || !isDigit(l[1]) || !isDigit(l[2]) {
		return ""
	}
	if code != "" && l[:3] != code {
		return ""
	}
	return l[:3]
}

// startsNewItem reports whether a notice line starts something other than
// a continuation: an address, a new reply, a transcript line, a rule.
func startsNewItem(l string) bool {
	if strings.HasPrefix(l, "<") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, ">>>") {
		return true
	}
	if strings.IndexByte(l, '@') >= 0 {
		if loc := addrRe.FindStringIndex(l); loc != nil && loc[0] == 0 {
			return true
		}
	}
	return len(l) > 3 && (l[0] == '4' || l[0] == '5') && isDigit(l[1]) && isDigit(l[2]) && (l[3] == ' ' || l[3] == '-')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// afterAddress returns what follows rcpt on line i, without the
// punctuation around an address.
func (n noticeLines) afterAddress(i int, rcpt string) string {
	j := addressIndex(n.lower[i], rcpt)
	if j < 0 {
		return ""
	}
	return oneLine(strings.TrimLeft(n.orig[i][j+len(rcpt):], ">:;,.) \t"))
}

// isSeparator reports a line made only of decoration (***, ===, ---).
func isSeparator(l string) bool {
	return strings.Trim(l, "*=-_# ") == ""
}

// nextLines returns the first non-empty lines after start that name no
// address, up to a blank line or another recipient: the explanation under
// the lower-case rcpt. A list of recipients each with its reason indented
// under it (Exim's "  a@b.example\n    Unrouteable address") gives the
// next recipient at the first one's indent or less; a line naming rcpt
// again (Sendmail's transcript "<a@b>... Deferred: ...") goes on with it.
func (n noticeLines) nextLines(start int, rcpt string) string {
	var out []string
	for i := start + 1; i < len(n.lower) && i < start+8; i++ {
		l := strings.TrimSpace(n.lower[i])
		switch {
		case l == "" && len(out) > 0,
			len(out) > 0 && startsNewItem(l) && indentOf(n.orig[i]) <= indentOf(n.orig[start]) && addressIndex(l, rcpt) < 0:
			return oneLine(strings.Join(out, " "))
		case l == "", isSeparator(l), len(out) == 0 && strings.IndexByte(l, '@') >= 0 && addrRe.MatchString(l):
			continue
		default:
			out = append(out, strings.TrimSpace(n.orig[i]))
		}
	}
	return oneLine(strings.Join(out, " "))
}

// indentOf returns the width of a line's leading white space.
func indentOf(l string) int {
	return len(l) - len(strings.TrimLeft(l, " \t"))
}
