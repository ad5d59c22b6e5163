package apikey

import (
	"regexp"
	"testing"
)

func TestGenerateParseRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	shape := regexp.MustCompile(`^mg_[A-Za-z0-9]{16}_[A-Za-z0-9]{32}$`)
	for i := 0; i < 200; i++ {
		tok, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.String()
		if !shape.MatchString(s) {
			t.Fatalf("token %q has the wrong shape", s)
		}
		if seen[s] {
			t.Fatalf("duplicate token %q", s)
		}
		seen[s] = true
		id, secret, err := Parse(s)
		if err != nil || id != tok.ID || secret != tok.Secret {
			t.Fatalf("Parse(%q) = %q, %q, %v", s, id, secret, err)
		}
		if !Matches(secret, tok.Hash) || Matches(secret+"x", tok.Hash) {
			t.Fatal("Matches disagrees with the hash")
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", "mg_", "mg_abc_def", "xx_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
		"mg_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB!",
		"mg_AAAAAAAAAAAAAAA-_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
		"mg_AAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
	} {
		t.Run(s, func(t *testing.T) {
			if _, _, err := Parse(s); err == nil {
				t.Fatalf("Parse(%q) accepted", s)
			}
		})
	}
}

func TestHasScope(t *testing.T) {
	tests := []struct {
		scopes []string
		want   string
		ok     bool
	}{
		{[]string{ScopeSend}, ScopeSend, true},
		{[]string{ScopeSend}, ScopeRead, false},
		{[]string{ScopeAdmin}, ScopeSuppressions, true},
		{nil, ScopeSend, false},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := HasScope(tt.scopes, tt.want); got != tt.ok {
				t.Fatalf("HasScope(%v, %s) = %v", tt.scopes, tt.want, got)
			}
		})
	}
}
