package store

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// cursor is the sort key of the last row of a page. It travels as
// base64url JSON so callers treat it as opaque.
type cursor struct {
	// T is a time in Unix microseconds (messages, suppressions).
	T int64 `json:"t,omitempty"`
	// K is a string key (message id, email).
	K string `json:"k,omitempty"`
	// N is an integer key (event id).
	N int64 `json:"n,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // a struct of scalars always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses s; "" is the first page and yields ok == false.
func decodeCursor(s string) (c cursor, ok bool, err error) {
	if s == "" {
		return cursor{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, false, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return cursor{}, false, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	if c == (cursor{}) {
		return cursor{}, false, fmt.Errorf("%w: empty", ErrBadCursor)
	}
	return c, true, nil
}

// pageLimit is the page size: DefaultPageLimit when unset.
func pageLimit(p Page) int {
	if p.Limit <= 0 {
		return DefaultPageLimit
	}
	return p.Limit
}

// DefaultPageLimit is the page size when Page.Limit is zero or negative.
const DefaultPageLimit = 50
