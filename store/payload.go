package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// The stored payload (NewMessage.Payload) is the request the API accepted.
// Its text and HTML bodies, most of its bytes, are kept apart from the
// JSON of the rest so that neither side escapes or unescapes them:
//
//	0x00 'P' 1, then three length-prefixed parts (unsigned varints):
//	the JSON of the request without text and html, the text, the HTML.
//
// A JSON document never starts with a NUL byte, so payloads stored as
// JSON alone (before this format) are told apart and read as before.
// Written by hand: a framing of three byte strings is all it is.
const payloadMagic = "\x00P\x01"

// ErrBadPayload: a framed payload is cut short or malformed.
var ErrBadPayload = errors.New("malformed stored payload")

// EncodePayload frames the JSON of a request (its text and html left
// out) with its text and HTML bodies.
func EncodePayload(head []byte, text, html string) []byte {
	b := make([]byte, 0, len(payloadMagic)+3*binary.MaxVarintLen64+len(head)+len(text)+len(html))
	b = append(b, payloadMagic...)
	b = binary.AppendUvarint(b, uint64(len(head)))
	b = append(b, head...)
	b = binary.AppendUvarint(b, uint64(len(text)))
	b = append(b, text...)
	b = binary.AppendUvarint(b, uint64(len(html)))
	return append(b, html...)
}

// DecodePayload splits a payload made by EncodePayload into its parts;
// framed is false (and head is b) for a payload stored as JSON alone.
func DecodePayload(b []byte) (head []byte, text, html string, framed bool, err error) {
	if len(b) < len(payloadMagic) || string(b[:len(payloadMagic)]) != payloadMagic {
		return b, "", "", false, nil
	}
	rest := b[len(payloadMagic):]
	var parts [3][]byte
	for i := range parts {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, "", "", true, ErrBadPayload
		}
		parts[i], rest = rest[k:k+int(n)], rest[k+int(n):]
	}
	if len(rest) != 0 {
		return nil, "", "", true, ErrBadPayload
	}
	return parts[0], string(parts[1]), string(parts[2]), true, nil
}

// MessagePayload reads the payload stored with a message. ErrNotFound
// when there is no such message.
func (s *Store) MessagePayload(ctx context.Context, id string) ([]byte, error) {
	q := `SELECT payload FROM messages WHERE id = $1`
	if s.dialect == DialectSQLite {
		q = `SELECT payload FROM message_payloads WHERE message_id = $1`
	}
	var b []byte
	if err := s.rdb.QueryRowContext(ctx, q, id).Scan(&b); err != nil {
		return nil, fmt.Errorf("payload of %s: %w", id, notFound(err))
	}
	return b, nil
}
