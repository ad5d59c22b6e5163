// Package apikey owns the API key token format and the scopes a key can
// hold. A token is "mg_" + id + "_" + secret, using only A-Za-z0-9_; the id
// is public and names the key, the secret is shown once and only its
// SHA-256 is stored (secrets are 190 random bits, so a fast hash is enough:
// there is nothing to brute-force).
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
)

// Scopes a key can hold (docs/architecture.md "API keys and scopes").
const (
	ScopeSend         = "messages:send"
	ScopeRead         = "messages:read"
	ScopeSuppressions = "suppressions"
	ScopeDomains      = "domains"
	ScopeWebhooks     = "webhooks"
	// ScopeAdmin manages projects and keys, and implies every other scope.
	ScopeAdmin = "admin"
)

// AllScopes lists every scope, in documentation order.
func AllScopes() []string {
	return []string{ScopeSend, ScopeRead, ScopeSuppressions, ScopeDomains, ScopeWebhooks, ScopeAdmin}
}

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool {
	for _, v := range AllScopes() {
		if v == s {
			return true
		}
	}
	return false
}

// HasScope reports whether scopes grant want (admin grants everything).
func HasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if s == want || s == ScopeAdmin {
			return true
		}
	}
	return false
}

const (
	prefix    = "mg_"
	idLen     = 16
	secretLen = 32
	alphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// ErrMalformed: the string is not a mailgate token.
var ErrMalformed = errors.New("malformed API key")

// Token is a freshly generated key.
type Token struct {
	// ID is the public part, stored as the key's id.
	ID string
	// Secret is the private part; only its hash is stored.
	Secret string
	// Hash is SHA-256 of Secret.
	Hash []byte
}

// String is the whole token the user keeps: mg_<id>_<secret>.
func (t Token) String() string { return prefix + t.ID + "_" + t.Secret }

// Generate makes a new random token.
func Generate() (Token, error) {
	id, err := randomString(idLen)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(secretLen)
	if err != nil {
		return Token{}, err
	}
	return Token{ID: id, Secret: secret, Hash: HashSecret(secret)}, nil
}

// Parse splits a token into its id and secret.
func Parse(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != idLen || len(secret) != secretLen || !inAlphabet(id) || !inAlphabet(secret) {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Matches reports, in constant time, whether secret hashes to hash.
func Matches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// randomString draws n characters uniformly from the alphabet (rejection
// sampling, so no character is more likely than another).
func randomString(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < 256-256%len(alphabet) && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}
