package keyring

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// testKey is a deterministic key for tests: 32 bytes of b.
func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, KeySize))
}

func mustNew(t *testing.T, keys ...string) *Keyring {
	t.Helper()
	k, err := New(keys)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return k
}

func TestKeyID(t *testing.T) {
	k := mustNew(t, testKey(1))
	sum := sha256.Sum256(bytes.Repeat([]byte{1}, KeySize))
	if want := hex.EncodeToString(sum[:])[:8]; k.KeyID() != want {
		t.Errorf("KeyID = %q, want %q", k.KeyID(), want)
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	tests := []struct {
		name string
		keys []string
		want error
	}{
		{"none", nil, ErrNoKey},
		{"short", []string{short}, ErrBadKey},
		{"not base64", []string{"secret!!secret!!"}, ErrBadKey},
		{"url alphabet", []string{base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, KeySize))}, ErrBadKey},
		{"second bad", []string{testKey(1), short}, ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.keys)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New = %v, want %v", err, tt.want)
			}
			for _, k := range tt.keys {
				if strings.Contains(err.Error(), k) {
					t.Errorf("error %q contains the key", err)
				}
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	old := mustNew(t, testKey(1))
	rotated := mustNew(t, testKey(2), testKey(1))
	other := mustNew(t, testKey(3))
	secret, aad := []byte("-----BEGIN PRIVATE KEY-----"), []byte("shop.example mg202611r")

	sealed, err := old.Seal(secret, aad)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if want := "v1:" + old.KeyID() + ":"; !strings.HasPrefix(string(sealed), want) {
		t.Errorf("sealed = %q, want prefix %q", sealed, want)
	}
	if bytes.Contains(sealed, secret) {
		t.Error("sealed value contains the plaintext")
	}
	for name, k := range map[string]*Keyring{"same ring": old, "retired key": rotated} {
		t.Run(name, func(t *testing.T) {
			got, err := k.Open(sealed, aad)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("Open = %q, %v; want %q", got, err, secret)
			}
		})
	}
	t.Run("new key seals", func(t *testing.T) {
		s2, err := rotated.Seal(secret, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(s2), "v1:"+rotated.KeyID()+":") {
			t.Errorf("rotated ring sealed with %q, want key %s", s2[:12], rotated.KeyID())
		}
	})
	if _, err := other.Open(sealed, aad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open with unknown key = %v, want ErrUnknownKey", err)
	}
	if _, err := old.Open(sealed, []byte("other.example mg202611r")); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with other aad = %v, want ErrOpen", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-3] ^= 'A' ^ 'B'
	if _, err := old.Open(tampered, aad); err == nil {
		t.Error("Open of a tampered value succeeded")
	}
	for _, bad := range []string{"", "v2:abcd:AAAA", "v1:nocolon", "v1:" + old.KeyID() + ":!!!", "v1:" + old.KeyID() + ":AAAA"} {
		if _, err := old.Open([]byte(bad), aad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Open(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	k := mustNew(t, testKey(1))
	a, _ := k.Seal([]byte("x"), nil)
	b, _ := k.Seal([]byte("x"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are equal")
	}
}

func TestMAC(t *testing.T) {
	old := mustNew(t, testKey(1))
	rotated := mustNew(t, testKey(2), testKey(1))
	data := []byte("message 1 recipient 0")
	id, mac := old.MAC("verp", data)
	if id != old.KeyID() || len(mac) != sha256.Size {
		t.Fatalf("MAC = %s, %d bytes", id, len(mac))
	}
	tests := []struct {
		name    string
		k       *Keyring
		purpose string
		id      string
		data    []byte
		mac     []byte
		want    bool
	}{
		{"whole", old, "verp", id, data, mac, true},
		{"truncated", old, "verp", id, data, mac[:MinMACLen], true},
		{"too short", old, "verp", id, data, mac[:MinMACLen-1], false},
		{"retired key verifies", rotated, "verp", id, data, mac[:12], true},
		{"other purpose", old, "unsubscribe", id, data, mac, false},
		{"other data", old, "verp", id, []byte("message 1 recipient 1"), mac, false},
		{"unknown key id", old, "verp", "00000000", data, mac, false},
		{"flipped bit", old, "verp", id, data, append([]byte{mac[0] ^ 1}, mac[1:]...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.k.VerifyMAC(tt.purpose, tt.id, tt.data, tt.mac); got != tt.want {
				t.Errorf("VerifyMAC = %v, want %v", got, tt.want)
			}
		})
	}
	newID, _ := rotated.MAC("verp", data)
	if newID != rotated.KeyID() || newID == id {
		t.Errorf("rotated ring signs with %s, want the first key %s", newID, rotated.KeyID())
	}
}

func TestGenerated(t *testing.T) {
	a, err := Generated()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generated()
	if a.KeyID() == b.KeyID() {
		t.Error("two generated keyrings share a key")
	}
	s, _ := a.Seal([]byte("x"), nil)
	if got, err := a.Open(s, nil); err != nil || string(got) != "x" {
		t.Errorf("Open = %q, %v", got, err)
	}
}
