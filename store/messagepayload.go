package store

import (
	"context"
	"fmt"
)

// MessagePayload reads the stored request of a project's message (the
// console shows its headers, bodies and attachments). A message of
// another project, or whose payload retention has deleted, is
// ErrNotFound.
func (s *Store) MessagePayload(ctx context.Context, projectID, id string) (Payload, error) {
	var p Payload
	var text, html []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT p.request, p.text, p.html FROM message_payloads p
		JOIN messages m ON m.id = p.message_id WHERE p.message_id = $1 AND m.project_id = $2`,
		id, projectID).Scan(&p.Request, &text, &html)
	if err != nil {
		return Payload{}, fmt.Errorf("payload of %s: %w", id, notFound(err))
	}
	p.Text, p.HTML = string(text), string(html)
	return p, nil
}
