package store

import (
	"context"
	"fmt"
)

// Payload is the stored form of a request the API accepted, read back to
// build the message when it is sent. The text and HTML bodies, most of its
// bytes, have columns of their own so that nothing escapes or unescapes
// them; Request is the JSON of the rest of the request.
type Payload struct {
	// Request is the JSON of the request without its text and html.
	Request []byte
	Text    string
	HTML    string
}

// MessagePayload reads the stored payload of message id; ErrNotFound when
// there is none.
func (s *Store) MessagePayload(ctx context.Context, id string) (Payload, error) {
	var p Payload
	err := s.rdb.QueryRowContext(ctx, `SELECT request, text, html FROM message_payloads WHERE message_id = $1`, id).
		Scan(&p.Request, &p.Text, &p.HTML)
	if err != nil {
		return Payload{}, fmt.Errorf("load payload of %s: %w", id, notFound(err))
	}
	return p, nil
}
