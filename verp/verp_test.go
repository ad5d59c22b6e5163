package verp_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/verp"
)

const msgID = "0193a6f2-5c1e-7b3a-9d4f-2e8b1c0a7f65"

func ring(t testing.TB, fills ...byte) *keyring.Keyring {
	t.Helper()
	keys := make([]string, len(fills))
	for i, f := range fills {
		keys[i] = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{f}, keyring.KeySize))
	}
	k, err := keyring.New(keys)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return k
}

type parsed struct {
	ID  string
	Pos int
}

func TestRoundTrip(t *testing.T) {
	c := verp.New(ring(t, 1), "Bounces.Mailgate.Example")
	tests := []struct {
		name string
		pos  int
		// form turns the address into what Parse is given.
		form func(string) string
	}{
		{"address", 0, func(a string) string { return a }},
		{"last position", verp.MaxRecipient, func(a string) string { return a }},
		{"upper-cased by an MTA", 7, strings.ToUpper},
		{"local part", 49, func(a string) string { l, _, _ := strings.Cut(a, "@"); return l }},
		{"bare token", 3, func(a string) string { l, _, _ := strings.Cut(a, "@"); return strings.TrimPrefix(l, "b+") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, err := c.Address(strings.ToUpper(msgID), tt.pos)
			if err != nil {
				t.Fatalf("Address: %v", err)
			}
			local, domain, _ := strings.Cut(addr, "@")
			if len(local) > 64 || local != strings.ToLower(local) || !strings.HasPrefix(local, "b+") {
				t.Errorf("local part %q: want ≤ 64 octets, lower case, b+ prefix", local)
			}
			if domain != "bounces.mailgate.example" {
				t.Errorf("domain %q", domain)
			}
			id, pos, err := c.Parse(tt.form(addr))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.form(addr), err)
			}
			if diff := cmp.Diff(parsed{msgID, tt.pos}, parsed{id, pos}); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSingleCharacterChange changes each character of the token to another
// of the same alphabet: every change must be caught by the MAC.
func TestSingleCharacterChange(t *testing.T) {
	c := verp.New(ring(t, 1), "bounces.example")
	addr, err := c.Address(msgID, 5)
	if err != nil {
		t.Fatal(err)
	}
	local, _, _ := strings.Cut(addr, "@")
	token := strings.TrimPrefix(local, "b+")
	for i := range token {
		alphabet := "abcdefghijklmnopqrstuvwxyz234567"
		if i < 40 {
			alphabet = "0123456789abcdef"
		}
		j := (strings.IndexByte(alphabet, token[i]) + 1) % len(alphabet)
		changed := token[:i] + alphabet[j:j+1] + token[i+1:]
		if _, _, err := c.Parse(changed); !errors.Is(err, verp.ErrForged) {
			t.Errorf("char %d changed (%s): Parse = %v, want ErrForged", i, changed, err)
		}
	}
}

func TestRotation(t *testing.T) {
	old := verp.New(ring(t, 1), "bounces.example")
	addr, err := old.Address(msgID, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("retired key verifies", func(t *testing.T) {
		rotated := verp.New(ring(t, 2, 1), "bounces.example")
		id, pos, err := rotated.Parse(addr)
		if err != nil || id != msgID || pos != 2 {
			t.Fatalf("Parse = %s, %d, %v", id, pos, err)
		}
		fresh, _ := rotated.Address(msgID, 2)
		if fresh == addr {
			t.Error("rotated codec still signs with the old key")
		}
	})
	t.Run("unknown key id", func(t *testing.T) {
		other := verp.New(ring(t, 3), "bounces.example")
		if _, _, err := other.Parse(addr); !errors.Is(err, verp.ErrForged) {
			t.Fatalf("Parse under another key = %v, want ErrForged", err)
		}
	})
}

func TestMalformed(t *testing.T) {
	c := verp.New(ring(t, 1), "bounces.example")
	good, _ := c.Address(msgID, 0)
	local, _, _ := strings.Cut(good, "@")
	for _, in := range []string{
		"", "b+@bounces.example", "orders@shop.example", local + "a", local[:len(local)-1],
		strings.Replace(local, local[2:4], "zz", 1), // key id not hex
		local[:len(local)-16] + "0000000000000000",  // mac not base32 (0, 1)
		local[:10] + "g" + local[11:],               // message id not hex
	} {
		if _, _, err := c.Parse(in); !errors.Is(err, verp.ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", in, err)
		}
	}
}

func TestAddressRejectsBadInput(t *testing.T) {
	c := verp.New(ring(t, 1), "bounces.example")
	for _, tt := range []struct {
		id  string
		pos int
	}{{"not-a-uuid", 0}, {msgID, -1}, {msgID, verp.MaxRecipient + 1}} {
		if _, err := c.Address(tt.id, tt.pos); err == nil {
			t.Errorf("Address(%q, %d) succeeded", tt.id, tt.pos)
		}
	}
}
