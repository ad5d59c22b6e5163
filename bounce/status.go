package bounce

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
)

var (
	// addrRe finds something shaped like an addr-spec.
	addrRe = regexp.MustCompile(`[A-Za-z0-9!#$%&'*+/=?^_{|}~.\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)+`)
)

// findStatus returns the first RFC 3463 status code of class 4 or 5 in s,
// else the first of class 2, or "". A transcript lists successes before the
// failure; the failure is what matters. A code must not be part of a longer
// dotted number (an IP address, a version) or of a word.
func findStatus(s string) string {
	first := ""
	for i := 0; i+4 < len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' || s[i+1] != '.' || i > 0 && isWordOrDot(s[i-1]) {
			continue
		}
		end, ok := statusEnd(s, i+2)
		if !ok {
			continue
		}
		if c != '2' {
			return s[i:end]
		}
		if first == "" {
			first = s[i:end]
		}
	}
	return first
}

// statusEnd parses "subject.detail" (1–3 digits each) from s[i:] and
// returns the end of the code.
func statusEnd(s string, i int) (int, bool) {
	j := digitsEnd(s, i)
	if j == i || j-i > 3 || j >= len(s) || s[j] != '.' {
		return 0, false
	}
	k := digitsEnd(s, j+1)
	if k == j+1 || k-j-1 > 3 {
		return 0, false
	}
	if k < len(s) && (isDigit(s[k]) || s[k] == '.' && k+1 < len(s) && isDigit(s[k+1])) {
		return 0, false
	}
	return k, true
}

// digitsEnd returns the index after the run of digits starting at i.
func digitsEnd(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// isWordOrDot reports an ASCII letter, digit, underscore or dot.
func isWordOrDot(c byte) bool {
	return isDigit(c) || c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// findReplyCode returns the first SMTP reply code (RFC 5321 §4.2) of class
// 4 or 5 in s, else the first of class 2, or 0. A code stands alone: not
// part of a longer or dotted number, followed by a space, a hyphen, the end
// or one of "]:,".
func findReplyCode(s string) int {
	first := 0
	for i := 0; i+2 < len(s); i++ {
		c := s[i]
		if c != '2' && c != '4' && c != '5' || s[i+1] < '0' || s[i+1] > '5' || !isDigit(s[i+2]) {
			continue
		}
		if i > 0 && strings.IndexByte("0123456789.-/#", s[i-1]) >= 0 {
			continue
		}
		if i+3 < len(s) && strings.IndexByte(" -]:,", s[i+3]) < 0 {
			continue
		}
		n := int(c-'0')*100 + int(s[i+1]-'0')*10 + int(s[i+2]-'0')
		if c != '2' {
			return n
		}
		if first == 0 {
			first = n
		}
	}
	return first
}

// statusClass returns the first digit of a status code, or 0.
func statusClass(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

// cleanAddress reduces "Name <a@b>", "<a@b>" or "a@b" to "a@b"; it returns
// "" when no address is found.
func cleanAddress(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if a, err := mail.ParseAddress(s); err == nil {
		return quoteLocal(a.Address)
	}
	if m := addrRe.FindString(s); m != "" {
		return strings.Trim(m, ".")
	}
	return ""
}

// quoteLocal restores the quotes of a local part that is not a dot-atom
// (RFC 5322 §3.4.1), such as "a..b"@example.com, which net/mail returns
// unquoted.
func quoteLocal(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 {
		return addr
	}
	local := addr[:i]
	if isDotAtom(local) {
		return addr
	}
	return strconv.Quote(local) + addr[i:]
}

// isDotAtom reports whether s is an RFC 5322 §3.2.3 dot-atom.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		if c < 0x80 && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", c)) {
			return false
		}
	}
	return true
}

// headerAddress returns the first address of a header value.
func headerAddress(v string) string {
	if list, err := mail.ParseAddressList(v); err == nil && len(list) > 0 {
		return list[0].Address
	}
	return cleanAddress(v)
}

// headerAddresses returns every address of a header value.
func headerAddresses(v string) []string {
	if list, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(list))
		for _, a := range list {
			out = append(out, a.Address)
		}
		return out
	}
	return addrRe.FindAllString(v, -1)
}
