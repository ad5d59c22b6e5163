// Package verp owns mailgate's bounce addresses (variable envelope return
// path): the envelope sender of each SMTP transaction is
// "b+TOKEN@<return-path domain>", and TOKEN names the message and the
// recipient, authenticated with an HMAC under the master key, so that a
// bounce ties back to exactly one recipient and a forged bounce cannot
// suppress an address.
//
// TOKEN is 59 characters of lower-case hex and base32, in this order:
//
//	keyid    8 hex     id of the master key that made the MAC
//	message 32 hex     the message's UUID without hyphens
//	position 3 base32  the recipient's position in the message (< 32768)
//	mac     16 base32  the first 10 bytes of HMAC-SHA256 over message and position
//
// With the "b+" prefix the local part is 61 octets, within the 64 of
// RFC 5321 §4.5.3.1.1. It uses only lower-case letters and digits because
// some MTAs fold the case of local parts (RFC 5321 §2.4 lets them); Parse
// folds case first. The MAC is made by whatever implements MACer (package
// keyring); this package holds no key.
package verp

import (
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Purpose is the MAC purpose string bounce tokens are made under.
const Purpose = "verp"

// Prefix starts every bounce address's local part.
const Prefix = "b+"

// MaxRecipient is the largest recipient position a token can carry.
const MaxRecipient = 1<<15 - 1

const (
	keyIDLen = 8
	msgLen   = 32
	posLen   = 3
	macBytes = 10
	macLen   = 16 // base32 of macBytes, no padding
	tokenLen = keyIDLen + msgLen + posLen + macLen
)

// b32 is RFC 4648 §6 base32 in lower case, unpadded.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const b32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

// Sentinel errors of Parse.
var (
	// ErrMalformed: the address or token does not have the token's shape.
	ErrMalformed = errors.New("malformed bounce token")
	// ErrForged: the token has the right shape but its MAC does not verify
	// (changed, made with another key, or with a master key no longer held).
	ErrForged = errors.New("bounce token does not authenticate")
)

// MACer makes and checks MACs under the master key (*keyring.Keyring).
type MACer interface {
	MAC(purpose string, data []byte) (keyID string, mac []byte)
	VerifyMAC(purpose, keyID string, data, mac []byte) bool
}

// Codec makes and parses bounce addresses for one return-path domain.
type Codec struct {
	macer  MACer
	domain string
}

// New is a codec making addresses at domain (lower-cased).
func New(m MACer, domain string) *Codec {
	return &Codec{macer: m, domain: strings.ToLower(domain)}
}

// Address is the bounce address "b+TOKEN@domain" for recipient position
// recipient (0-based) of message messageID, which must be a UUID.
func (c *Codec) Address(messageID string, recipient int) (string, error) {
	id, err := uuid.Parse(messageID)
	if err != nil {
		return "", fmt.Errorf("bounce address: message id %q is not a UUID", messageID)
	}
	if recipient < 0 || recipient > MaxRecipient {
		return "", fmt.Errorf("bounce address: recipient position %d out of range 0..%d", recipient, MaxRecipient)
	}
	data := macData(id, recipient)
	keyID, mac := c.macer.MAC(Purpose, data)
	var b strings.Builder
	b.Grow(len(Prefix) + tokenLen + 1 + len(c.domain))
	b.WriteString(Prefix)
	b.WriteString(strings.ToLower(keyID))
	b.WriteString(strings.ReplaceAll(id.String(), "-", ""))
	b.WriteString(encodePosition(recipient))
	b.WriteString(b32.EncodeToString(mac[:macBytes]))
	b.WriteByte('@')
	b.WriteString(c.domain)
	return b.String(), nil
}

// Parse reads a bounce address ("b+TOKEN@domain", any case), a local part
// ("b+TOKEN") or a bare TOKEN, and returns the message id (a lower-case
// UUID with hyphens) and recipient position it names. The domain is not
// checked, so addresses made before a change of return-path domain still
// parse.
func (c *Codec) Parse(addressOrToken string) (messageID string, recipient int, err error) {
	token := strings.ToLower(strings.TrimSpace(addressOrToken))
	if at := strings.LastIndexByte(token, '@'); at >= 0 {
		token = token[:at]
	}
	token = strings.TrimPrefix(token, Prefix)
	if len(token) != tokenLen {
		return "", 0, ErrMalformed
	}
	keyID, rest := token[:keyIDLen], token[keyIDLen:]
	hexID, rest := rest[:msgLen], rest[msgLen:]
	posText, macText := rest[:posLen], rest[posLen:]
	id, err := uuid.Parse(hexID)
	if err != nil || !isLowerHex(keyID) || !isLowerHex(hexID) {
		return "", 0, ErrMalformed
	}
	pos, ok := decodePosition(posText)
	mac, err := b32.DecodeString(macText)
	if !ok || err != nil || len(mac) != macBytes {
		return "", 0, ErrMalformed
	}
	if !c.macer.VerifyMAC(Purpose, keyID, macData(id, pos), mac) {
		return "", 0, ErrForged
	}
	return id.String(), pos, nil
}

// macData is what the MAC covers: the 16 bytes of the message UUID and the
// position as 2 big-endian bytes.
func macData(id uuid.UUID, pos int) []byte {
	b := make([]byte, 0, 18)
	b = append(b, id[:]...)
	return binary.BigEndian.AppendUint16(b, uint16(pos))
}

// encodePosition writes pos as posLen base32 digits, most significant first.
func encodePosition(pos int) string {
	var b [posLen]byte
	for i := posLen - 1; i >= 0; i-- {
		b[i] = b32Alphabet[pos&31]
		pos >>= 5
	}
	return string(b[:])
}

func decodePosition(s string) (int, bool) {
	pos := 0
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(b32Alphabet, s[i])
		if d < 0 {
			return 0, false
		}
		pos = pos<<5 | d
	}
	return pos, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}
