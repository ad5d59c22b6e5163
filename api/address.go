package api

import (
	"errors"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Address is one parsed mailbox.
type Address struct {
	// Name is the display name, unquoted and decoded; it may be empty.
	Name string
	// Email is local@domain with the domain in lower-case A-label
	// (punycode) form and the local part exactly as given.
	Email string
	// Domain is the lower-case A-label domain of Email.
	Domain string
}

// ErrInvalidAddress is what every ParseAddress error wraps (errors.Is).
// The error text alone names the problem, without echoing the input.
var ErrInvalidAddress = errors.New("invalid email address")

// addressError is a ParseAddress failure: its text is the message shown to
// the client in a FieldError; it unwraps to ErrInvalidAddress.
type addressError struct{ msg string }

func (e *addressError) Error() string { return e.msg }
func (e *addressError) Unwrap() error { return ErrInvalidAddress }

func addrErr(msg string) error { return &addressError{msg: msg} }

// Messages of ParseAddress errors, also the FieldError messages.
const (
	msgInjection    = "must not contain CR, LF or NUL"
	msgControl      = "must not contain control characters"
	msgAddrInvalid  = "invalid email address"
	msgAddrLocalLen = "local part longer than 64 octets"
	msgAddrLabelLen = "domain label longer than 63 octets"
	msgAddrTotalLen = "address longer than 254 octets"
	msgAddrDomain   = "domain is not a valid host name"
	msgAddrLiteral  = "IP address literals are not accepted"
	msgAddrTooLong  = "mailbox longer than 998 octets"
)

// Length limits on addresses: RFC 5321 §4.5.3.1.1 (local part), §4.5.3.1.2
// (label, via RFC 1035 §2.3.4) and §4.5.3.1.3 (a 256-octet path minus "<>").
const (
	maxLocalPart   = 64
	maxDomainLabel = 63
	maxAddress     = 254
	// maxMailbox bounds the whole input, display name included, to the
	// RFC 5322 §2.1.1 line limit: work stays small whatever is sent.
	maxMailbox = 998
)

// ParseAddress parses one RFC 5322 §3.4 mailbox: "addr", "Name <addr>" or
// "\"Quoted, Name\" <addr>". Display names may be UTF-8 (RFC 6532);
// RFC 2047 encoded words in them are decoded by net/mail. The addr-spec
// must be a plain dot-atom local part (UTF-8 allowed, RFC 6531 SMTPUTF8)
// and a host name: quoted local parts, comments, folding white space and IP
// literals are refused, and so is a single-label domain. An IDN domain is
// returned in lower-case A-label form (RFC 5891). The whole mailbox may be
// at most 998 octets. Surrounding spaces and tabs are ignored; CR, LF and
// NUL anywhere are refused (header injection). Every error wraps
// ErrInvalidAddress and its text alone is the message for the client.
func ParseAddress(s string) (Address, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return Address{}, addrErr(msgInjection)
	}
	s = strings.Trim(s, " \t")
	if len(s) > maxMailbox {
		return Address{}, addrErr(msgAddrTooLong)
	}
	if msg := addressTextProblem(s); msg != "" {
		return Address{}, addrErr(msg)
	}
	parsed, err := mail.ParseAddress(s)
	if err != nil || parsed.Address != addrSpecOf(s) {
		// A difference means net/mail dropped comments, white space or
		// quotes from the addr-spec: we accept only the plain form.
		if strings.Contains(s, "@[") {
			return Address{}, addrErr(msgAddrLiteral)
		}
		return Address{}, addrErr(msgAddrInvalid)
	}
	if msg := headerTextProblem(parsed.Name, false); msg != "" {
		return Address{}, addrErr(msg) // from an RFC 2047 encoded word
	}
	at := strings.LastIndexByte(parsed.Address, '@')
	local, domain := parsed.Address[:at], parsed.Address[at+1:]
	if msg := localPartProblem(local); msg != "" {
		return Address{}, addrErr(msg)
	}
	ascii, msg := normalizeDomain(domain)
	if msg != "" {
		return Address{}, addrErr(msg)
	}
	email := local + "@" + ascii
	if len(email) > maxAddress {
		return Address{}, addrErr(msgAddrTotalLen)
	}
	return Address{Name: parsed.Name, Email: email, Domain: ascii}, nil
}

// addressTextProblem refuses empty input, invalid UTF-8 and control
// characters anywhere in a mailbox.
func addressTextProblem(s string) string {
	if s == "" {
		return msgAddrInvalid
	}
	if !utf8.ValidString(s) {
		return msgAddrInvalid
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return msgControl
		}
	}
	return ""
}

// addrSpecOf returns the part of a mailbox that should be the bare
// addr-spec: what is inside the final angle brackets, or all of s.
func addrSpecOf(s string) string {
	if !strings.HasSuffix(s, ">") {
		return s
	}
	open := strings.LastIndexByte(s, '<')
	if open < 0 {
		return s
	}
	return s[open+1 : len(s)-1]
}

// localPartProblem checks a local part as an RFC 5322 §3.2.3 dot-atom whose
// atext is extended with non-ASCII characters per RFC 6532 §3.2 (no
// white space or controls), at most 64 octets.
func localPartProblem(local string) string {
	if len(local) > maxLocalPart {
		return msgAddrLocalLen
	}
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return msgAddrInvalid
	}
	for _, r := range local {
		if r != '.' && !isLocalAtext(r) {
			return msgAddrInvalid
		}
	}
	return ""
}

// isLocalAtext reports whether r is atext (RFC 5322 §3.2.3) or a printable
// non-ASCII character (RFC 6532 §3.2).
func isLocalAtext(r rune) bool {
	switch {
	case r >= utf8.RuneSelf:
		return !unicode.IsSpace(r) && !unicode.IsControl(r) && r != utf8.RuneError
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// normalizeDomain converts a domain to lower-case A-labels with the IDNA
// lookup profile (UTS #46 mapping, RFC 5893 bidi rule) and then checks it
// is a host name (RFC 1123 §2.1): at least two labels of letters, digits
// and hyphens, no hyphen at either end, labels ≤ 63 octets, and a
// top-level label that is not all digits (so no dotted IPv4 address).
// It returns the A-label form or a problem message.
func normalizeDomain(domain string) (string, string) {
	if strings.HasPrefix(domain, "[") {
		return "", msgAddrLiteral
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		return "", msgAddrDomain
	}
	ascii = strings.ToLower(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", msgAddrDomain
	}
	for _, label := range labels {
		if len(label) > maxDomainLabel {
			return "", msgAddrLabelLen
		}
		if !isHostLabel(label) {
			return "", msgAddrDomain
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", msgAddrDomain
	}
	return ascii, ""
}

// isHostLabel reports whether label is a non-empty LDH label without a
// hyphen at either end (RFC 1123 §2.1, RFC 952).
func isHostLabel(label string) bool {
	if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
