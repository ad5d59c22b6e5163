package api

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParseAddress(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name string
		in   string
		want Address
	}{
		{"bare", "ann@example.org", Address{Email: "ann@example.org", Domain: "example.org"}},
		{"name", "Bob <bob@example.net>", Address{Name: "Bob", Email: "bob@example.net", Domain: "example.net"}},
		{"quoted name with comma", `"Doe, John" <j@example.com>`, Address{Name: "Doe, John", Email: "j@example.com", Domain: "example.com"}},
		{"utf8 name", "Jörg Müller <j@example.de>", Address{Name: "Jörg Müller", Email: "j@example.de", Domain: "example.de"}},
		{"angle only", "<a@example.com>", Address{Email: "a@example.com", Domain: "example.com"}},
		{"surrounding space", "  a@example.com\t", Address{Email: "a@example.com", Domain: "example.com"}},
		{"domain lowered, local kept", "Ann.Lee@Example.ORG", Address{Email: "Ann.Lee@example.org", Domain: "example.org"}},
		{"idn domain", "user@bücher.example", Address{Email: "user@xn--bcher-kva.example", Domain: "xn--bcher-kva.example"}},
		{"idn upper case", "user@BÜCHER.example", Address{Email: "user@xn--bcher-kva.example", Domain: "xn--bcher-kva.example"}},
		{"a-label kept", "user@xn--bcher-kva.example", Address{Email: "user@xn--bcher-kva.example", Domain: "xn--bcher-kva.example"}},
		{"utf8 local part", "jörg@example.de", Address{Email: "jörg@example.de", Domain: "example.de"}},
		{"atext specials", "a.b+c!#$%&'*/=?^_`{|}~-@example.com", Address{Email: "a.b+c!#$%&'*/=?^_`{|}~-@example.com", Domain: "example.com"}},
		{"hyphen and digits", "x@mail-1.ex-ample.co.uk", Address{Email: "x@mail-1.ex-ample.co.uk", Domain: "mail-1.ex-ample.co.uk"}},
		{"local 64 octets", strings.Repeat("l", 64) + "@example.com", Address{Email: strings.Repeat("l", 64) + "@example.com", Domain: "example.com"}},
		{"label 63 octets", "a@" + long63 + ".com", Address{Email: "a@" + long63 + ".com", Domain: long63 + ".com"}},
		{"rfc2047 name decoded", "=?utf-8?q?J=C3=B6rg?= <j@example.de>", Address{Name: "Jörg", Email: "j@example.de", Domain: "example.de"}},
		{"mailbox 998 octets", strings.Repeat("n", 982) + " <a@example.com>", Address{Name: strings.Repeat("n", 982), Email: "a@example.com", Domain: "example.com"}},
		{"quoted angle in name", `"a>b<c" <x@example.com>`, Address{Name: "a>b<c", Email: "x@example.com", Domain: "example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseAddress(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseAddressRejects(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "invalid email address"},
		{"blank", "   ", "invalid email address"},
		{"no at", "ann.example.org", "invalid email address"},
		{"empty local", "@example.org", "invalid email address"},
		{"empty domain", "ann@", "invalid email address"},
		{"two ats", "a@b@example.org", "invalid email address"},
		{"local 65 octets", strings.Repeat("l", 65) + "@example.com", "local part longer than 64 octets"},
		{"local 65 octets utf8", strings.Repeat("é", 33) + "@example.com", "local part longer than 64 octets"},
		{"label 64 octets", "a@" + long63 + "a.com", "domain label longer than 63 octets"},
		{"address 255 octets", strings.Repeat("l", 64) + "@" + long63 + "." + long63 + "." + long63 + ".abcd", "address longer than 254 octets"},
		{"single label", "root@localhost", "domain is not a valid host name"},
		{"trailing dot domain", "a@example.com.", "invalid email address"},
		{"empty label", "a@example..com", "invalid email address"},
		{"leading hyphen label", "a@-x.example.com", "domain is not a valid host name"},
		{"trailing hyphen label", "a@x-.example.com", "domain is not a valid host name"},
		{"underscore domain", "a@x_y.example.com", "domain is not a valid host name"},
		{"numeric tld", "a@1.2.3.4", "domain is not a valid host name"},
		{"bad punycode", "a@xn--zz.com", "domain is not a valid host name"},
		{"ipv4 literal", "a@[192.0.2.1]", "IP address literals are not accepted"},
		{"ipv6 literal", "a@[IPv6:2001:db8::1]", "IP address literals are not accepted"},
		{"consecutive dots", "a..b@example.com", "invalid email address"},
		{"leading dot", ".a@example.com", "invalid email address"},
		{"trailing dot", "a.@example.com", "invalid email address"},
		{"space in local", "a b@example.com", "invalid email address"},
		{"space around at", "a @ example.com", "invalid email address"},
		{"space in angle", "Ann < a@example.com>", "invalid email address"},
		{"quoted local", `"john"@example.com`, "invalid email address"},
		{"quoted local with space", `"john doe"@example.com`, "invalid email address"},
		{"comment", "a@example.com (Ann)", "invalid email address"},
		{"inner comment", "a(x)@example.com", "invalid email address"},
		{"unquoted comma name", "Doe, John <j@example.com>", "invalid email address"},
		{"list", "a@example.com, b@example.com", "invalid email address"},
		{"cr", "a@example.com\r", "must not contain CR, LF or NUL"},
		{"lf in name", "Ann\nBcc: x@evil.example <a@example.com>", "must not contain CR, LF or NUL"},
		{"nul", "a\x00@example.com", "must not contain CR, LF or NUL"},
		{"encoded lf in name", "=?utf-8?q?a=0Ab?= <x@example.com>", "must not contain CR, LF or NUL"},
		{"tab", "a\t@example.com", "must not contain control characters"},
		{"c1 control", "Ann\u0085 <a@example.com>", "must not contain control characters"},
		{"invalid utf8", "a\xff@example.com", "invalid email address"},
		{"mailbox 999 octets", strings.Repeat("n", 983) + " <a@example.com>", "mailbox longer than 998 octets"},
		{"nbsp local", "a\u00a0b@example.com", "invalid email address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q) = %+v, want error %q", tt.in, got, tt.want)
			}
			if !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("ParseAddress(%q) error %v does not wrap ErrInvalidAddress", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("ParseAddress(%q) error (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"ann@example.org", "Bob <bob@example.net>", `"Doe, John" <j@example.com>`,
		"user@bücher.example", "jörg@example.de", "a@[192.0.2.1]", "=?utf-8?q?a=0Ab?= <x@y.z>",
		"a..b@example.com", `"john doe"@example.com`, "a@example.com (c)", "\"a>b<c\" <x@example.com>",
		"a@xn--zz.com", "<>", "@", "a@", "a@ｂｃ.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("error %v does not wrap ErrInvalidAddress", err)
			}
			return
		}
		checkParsedAddress(t, a)
		// The canonical form must parse to itself: what we store can be
		// parsed again.
		again, err := ParseAddress(a.Email)
		if err != nil {
			t.Fatalf("ParseAddress(%q) ok but its Email %q fails: %v", s, a.Email, err)
		}
		if again.Email != a.Email {
			t.Fatalf("Email not stable: %q then %q", a.Email, again.Email)
		}
	})
}

// checkParsedAddress asserts the invariants every accepted address holds.
func checkParsedAddress(t *testing.T, a Address) {
	t.Helper()
	local, domain, ok := strings.Cut(a.Email, "@")
	switch {
	case !ok || domain != a.Domain:
		t.Fatalf("Email %q does not end in @%s", a.Email, a.Domain)
	case len(local) == 0 || len(local) > 64 || len(a.Email) > 254:
		t.Fatalf("lengths out of range: %q", a.Email)
	case strings.ContainsAny(a.Email+a.Name, "\r\n\x00") || strings.ContainsAny(a.Email, " <>\"()"):
		t.Fatalf("forbidden characters in %+v", a)
	case !utf8.ValidString(a.Email) || a.Domain != strings.ToLower(a.Domain):
		t.Fatalf("domain not lower-case ASCII: %+v", a)
	}
	for i := 0; i < len(a.Domain); i++ {
		if a.Domain[i] >= utf8.RuneSelf {
			t.Fatalf("domain not A-label: %q", a.Domain)
		}
	}
}
