// Package keyring owns mailgate's master keys (MAILGATE_MASTER_KEY): it
// seals secrets at rest (DKIM private keys) with AES-256-GCM and
// authenticates tokens (VERP bounce addresses) with HMAC-SHA256. Every
// key has a public id, the first 8 hex characters of its SHA-256, carried
// in what it seals or signs so that the master key can rotate: the first
// key of the list seals and signs, every key opens and verifies.
//
// It does not read the environment, store anything or log: key material
// never leaves this package, not even in errors.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a master key in bytes (AES-256).
const KeySize = 32

// MinMACLen is the shortest truncated MAC VerifyMAC accepts, in bytes.
const MinMACLen = 10

// sealPrefix starts every sealed value; it names the format version.
const sealPrefix = "v1:"

// Sentinel errors.
var (
	// ErrNoKey: New was given no key.
	ErrNoKey = errors.New("no master key")
	// ErrBadKey: a key is not standard base64 of 32 bytes.
	ErrBadKey = errors.New("master key is not standard base64 of 32 bytes")
	// ErrUnknownKey: a sealed value names a key id the keyring does not hold.
	ErrUnknownKey = errors.New("sealed with an unknown master key")
	// ErrMalformed: a sealed value is not "v1:<keyid>:<base64>".
	ErrMalformed = errors.New("malformed sealed value")
	// ErrOpen: decryption failed (wrong additional data or tampering).
	ErrOpen = errors.New("sealed value does not authenticate")
)

// key is one master key with what is derived from it.
type key struct {
	id     string
	secret []byte
	aead   cipher.AEAD
}

// Keyring holds the master keys. It is safe for concurrent use.
type Keyring struct {
	keys []key
	byID map[string]*key
}

// New builds a keyring from standard base64 (RFC 4648 §4) keys of 32
// bytes each; the first seals and signs. Errors name the position of a bad
// key, never its content.
func New(keysBase64 []string) (*Keyring, error) {
	if len(keysBase64) == 0 {
		return nil, ErrNoKey
	}
	raw := make([][]byte, len(keysBase64))
	for i, s := range keysBase64 {
		b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(s))
		if err != nil || len(b) != KeySize {
			return nil, fmt.Errorf("master key %d of %d: %w", i+1, len(keysBase64), ErrBadKey)
		}
		raw[i] = b
	}
	return fromRaw(raw)
}

// Generated is a keyring with one ephemeral random key, for development
// without MAILGATE_MASTER_KEY: what it seals cannot be opened after a
// restart, so the caller warns.
func Generated() (*Keyring, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	return fromRaw([][]byte{b})
}

func fromRaw(raw [][]byte) (*Keyring, error) {
	k := &Keyring{keys: make([]key, len(raw)), byID: map[string]*key{}}
	for i, secret := range raw {
		block, err := aes.NewCipher(secret)
		if err != nil {
			return nil, fmt.Errorf("master key %d: aes: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("master key %d: gcm: %w", i+1, err)
		}
		sum := sha256.Sum256(secret)
		k.keys[i] = key{id: hex.EncodeToString(sum[:4]), secret: secret, aead: aead}
	}
	for i := range k.keys {
		if _, dup := k.byID[k.keys[i].id]; !dup {
			k.byID[k.keys[i].id] = &k.keys[i]
		}
	}
	return k, nil
}

// KeyID is the id of the key that seals and signs (8 lower-case hex
// characters).
func (k *Keyring) KeyID() string { return k.keys[0].id }

// Seal encrypts plaintext with the first key, binding aad (which is not
// stored: Open needs the same). The result is
// "v1:<keyid>:<base64(nonce|ciphertext)>".
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	cur := &k.keys[0]
	nonce := make([]byte, cur.aead.NonceSize(), cur.aead.NonceSize()+len(plaintext)+cur.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	box := cur.aead.Seal(nonce, nonce, plaintext, aad)
	out := make([]byte, 0, len(sealPrefix)+len(cur.id)+1+base64.StdEncoding.EncodedLen(len(box)))
	out = append(out, sealPrefix...)
	out = append(out, cur.id...)
	out = append(out, ':')
	return base64.StdEncoding.AppendEncode(out, box), nil
}

// Open decrypts what Seal made with any key of the ring. A value sealed
// under a key the ring lacks is ErrUnknownKey; a wrong aad or a changed
// byte is ErrOpen.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(sealed), sealPrefix)
	if !ok {
		return nil, ErrMalformed
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, ErrMalformed
	}
	kk, ok := k.byID[id]
	if !ok {
		return nil, fmt.Errorf("key id %s: %w", id, ErrUnknownKey)
	}
	box, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(box) < kk.aead.NonceSize()+kk.aead.Overhead() {
		return nil, ErrMalformed
	}
	ns := kk.aead.NonceSize()
	plain, err := kk.aead.Open(nil, box[:ns], box[ns:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// MAC is HMAC-SHA256 of data under a subkey of the first key derived for
// purpose (HKDF-SHA256, RFC 5869, with the purpose as info), so that MACs
// made for one purpose never verify for another. It returns the key's id
// and the 32-byte MAC; callers may keep a prefix of at least MinMACLen.
func (k *Keyring) MAC(purpose string, data []byte) (keyID string, mac []byte) {
	cur := &k.keys[0]
	return cur.id, macWith(cur, purpose, data)
}

// VerifyMAC reports whether mac (the whole MAC or a prefix of at least
// MinMACLen bytes) is the MAC of data for purpose under the key keyID, in
// constant time. An unknown key id does not verify.
func (k *Keyring) VerifyMAC(purpose, keyID string, data, mac []byte) bool {
	kk, ok := k.byID[keyID]
	if !ok || len(mac) < MinMACLen || len(mac) > sha256.Size {
		return false
	}
	want := macWith(kk, purpose, data)
	return subtle.ConstantTimeCompare(want[:len(mac)], mac) == 1
}

func macWith(kk *key, purpose string, data []byte) []byte {
	// HKDF cannot fail for a 32-byte output of SHA-256.
	sub, _ := hkdf.Key(sha256.New, kk.secret, nil, "mailgate mac "+purpose, sha256.Size)
	m := hmac.New(sha256.New, sub)
	m.Write(data)
	return m.Sum(nil)
}
