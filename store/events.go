package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	insertEvent  = `INSERT INTO events (project_id, message_id, recipient, type, sequence, data, created_at)`
	eventCols    = 7
	eventColumns = `e.id, e.project_id, COALESCE(e.message_id, ''), e.recipient, e.type, e.sequence, e.data, e.created_at,
		COALESCE(m.tags, '[]'), COALESCE(m.metadata, '{}')`
	// eventsJoined is the FROM clause eventColumns reads.
	eventsJoined = ` FROM events e LEFT JOIN messages m ON m.id = e.message_id`
)

// eventInput is one event for appendEvents.
type eventInput struct {
	Recipient string
	Type      string
	// Data is a JSON object; nil stores {}.
	Data json.RawMessage
}

// appendEvents adds evs to a message's event log inside tx, numbering them
// with the message's next sequence numbers. Bumping messages.event_seq
// also locks the message row on PostgreSQL, so concurrent writers to one
// message number their events without gaps or repeats. Later writers
// (delivery results, inbound mail) reuse this step in their own
// transactions.
func (s *Store) appendEvents(ctx context.Context, tx *sql.Tx, projectID, messageID string, evs []eventInput, now time.Time) error {
	if len(evs) == 0 {
		return nil
	}
	var last int64
	err := tx.QueryRowContext(ctx, `UPDATE messages SET event_seq = event_seq + $1 WHERE id = $2 RETURNING event_seq`,
		int64(len(evs)), messageID).Scan(&last)
	if err != nil {
		return fmt.Errorf("append events to %s: %w", messageID, notFound(err))
	}
	seq := last - int64(len(evs))
	args := make([]any, 0, len(evs)*eventCols)
	for _, ev := range evs {
		seq++
		data := "{}"
		if len(ev.Data) > 0 {
			data = string(ev.Data)
		}
		args = append(args, projectID, messageID, ev.Recipient, ev.Type, seq, data, micros(now))
	}
	if err := s.insertRows(ctx, tx, insertEvent, eventCols, args, ""); err != nil {
		return fmt.Errorf("append events to %s: %w", messageID, err)
	}
	return nil
}

// MessageEvents lists a message's events by sequence, oldest first.
// Another project's message yields no events.
func (s *Store) MessageEvents(ctx context.Context, projectID, messageID string) ([]Event, error) {
	evs, err := queryEvents(ctx, s.rdb, `SELECT `+eventColumns+eventsJoined+`
		WHERE e.message_id = $1 AND e.project_id = $2 ORDER BY e.sequence`, []any{messageID, projectID})
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", messageID, err)
	}
	return evs, nil
}

// ListEvents lists the project's events matching f, newest first. The
// returned cursor fetches the next page; it is "" after the last page.
func (s *Store) ListEvents(ctx context.Context, projectID string, f EventFilter) ([]Event, string, error) {
	c, err := eventConds(projectID, f)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(f.Page)
	q := `SELECT ` + eventColumns + eventsJoined + c.sql() + ` ORDER BY e.id DESC LIMIT ` + c.arg(limit+1)
	evs, err := queryEvents(ctx, s.rdb, q, c.args)
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w", err)
	}
	next := ""
	if len(evs) > limit {
		evs = evs[:limit]
		next = cursor{N: evs[limit-1].ID}.encode()
	}
	return evs, next, nil
}

// eventConds turns f into WHERE conditions on events e.
func eventConds(projectID string, f EventFilter) (*conds, error) {
	cur, ok, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	c := &conds{}
	c.add("e.project_id = " + c.arg(projectID))
	if f.Type != "" {
		c.add("e.type = " + c.arg(f.Type))
	}
	if f.MessageID != "" {
		c.add("e.message_id = " + c.arg(f.MessageID))
	}
	if f.Recipient != "" {
		c.add("lower(e.recipient) = " + c.arg(strings.ToLower(f.Recipient)))
	}
	if f.Since != nil {
		c.add("e.created_at >= " + c.arg(micros(*f.Since)))
	}
	if f.Until != nil {
		c.add("e.created_at < " + c.arg(micros(*f.Until)))
	}
	if ok {
		c.add("e.id < " + c.arg(cur.N))
	}
	return c, nil
}

func queryEvents(ctx context.Context, q querier, query string, args []any) ([]Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var ev Event
		var data, tags, metadata string
		var created int64
		if err := rows.Scan(&ev.ID, &ev.ProjectID, &ev.MessageID, &ev.Recipient, &ev.Type, &ev.Sequence,
			&data, &created, &tags, &metadata); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(tags), &ev.Tags); err != nil {
			return nil, fmt.Errorf("tags of event %d: %w", ev.ID, err)
		}
		if err := json.Unmarshal([]byte(metadata), &ev.Metadata); err != nil {
			return nil, fmt.Errorf("metadata of event %d: %w", ev.ID, err)
		}
		if data == "" || data == "null" {
			data = "{}"
		}
		ev.Data = json.RawMessage(data)
		if ev.MessageID == "" { // a domain event has its domain in its data
			var d domainEventData
			_ = json.Unmarshal(ev.Data, &d) // written by insertDomainEvent; a bad row leaves Domain empty
			ev.Domain = d.Domain
		}
		ev.CreatedAt = fromMicros(created)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// WebhookData is the event's data as a webhook delivers it and the event
// log shows it: the stored details (a bounce's type, reason, status and
// diagnostic; a reply's from, subject, text and in_reply_to; …) with, for
// an event of a message, its message_id, recipient, tags, metadata and
// sequence. Those names win over a detail of the same name.
func (e Event) WebhookData() (json.RawMessage, error) {
	fields := map[string]any{}
	if len(e.Data) > 0 {
		var details map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &details); err != nil {
			return nil, fmt.Errorf("data of event %d: %w", e.ID, err)
		}
		for k, v := range details {
			fields[k] = v
		}
	}
	if e.MessageID != "" {
		tags, metadata := e.Tags, e.Metadata
		if tags == nil {
			tags = []string{}
		}
		if metadata == nil {
			metadata = map[string]string{}
		}
		fields["message_id"], fields["recipient"], fields["sequence"] = e.MessageID, e.Recipient, e.Sequence
		fields["tags"], fields["metadata"] = tags, metadata
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("data of event %d: %w", e.ID, err)
	}
	return b, nil
}
