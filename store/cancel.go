package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// CancelMessage cancels every recipient of the message that is still
// queued, scheduled or deferred, appends a message.cancelled event for each
// and recomputes the message status, in one transaction. An unknown id (or
// another project's) is ErrNotFound; a message with nothing left to cancel
// is ErrNotCancellable. A worker updating the same recipients concurrently
// either wins (the recipient is no longer cancellable) or waits.
func (s *Store) CancelMessage(ctx context.Context, projectID, id string) (Message, error) {
	var m Message
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		// Touching the message row first locks it on PostgreSQL, so status
		// recomputation below cannot interleave with another writer's.
		res, err := tx.ExecContext(ctx, `UPDATE messages SET updated_at = $3 WHERE id = $1 AND project_id = $2`,
			id, projectID, micros(now))
		if err != nil {
			return fmt.Errorf("cancel message %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("cancel message %s: %w", id, ErrNotFound)
		}
		emails, err := cancelRecipients(ctx, tx, id, now)
		if err != nil {
			return err
		}
		if len(emails) == 0 {
			return fmt.Errorf("cancel message %s: %w", id, ErrNotCancellable)
		}
		evs := make([]eventInput, len(emails))
		for i, e := range emails {
			evs[i] = eventInput{Recipient: e, Type: EventCancelled}
		}
		if err := s.appendEvents(ctx, tx, projectID, id, evs, now); err != nil {
			return err
		}
		if err := refreshMessageStatus(ctx, tx, id); err != nil {
			return err
		}
		m, err = getMessage(ctx, tx, projectID, id)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// cancelRecipients cancels the message's cancellable recipients and
// returns their addresses in position order.
func cancelRecipients(ctx context.Context, tx *sql.Tx, id string, now time.Time) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE recipients SET status = $2, updated_at = $3
		WHERE message_id = $1 AND status IN ($4, $5, $6) RETURNING position, email`,
		id, StatusCancelled, micros(now), StatusQueued, StatusScheduled, StatusDeferred)
	if err != nil {
		return nil, fmt.Errorf("cancel recipients of %s: %w", id, err)
	}
	defer rows.Close()
	type posEmail struct {
		pos   int
		email string
	}
	var got []posEmail
	for rows.Next() {
		var pe posEmail
		if err := rows.Scan(&pe.pos, &pe.email); err != nil {
			return nil, fmt.Errorf("cancel recipients of %s: %w", id, err)
		}
		got = append(got, pe)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cancel recipients of %s: %w", id, err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].pos < got[j].pos })
	emails := make([]string, len(got))
	for i, pe := range got {
		emails[i] = pe.email
	}
	return emails, nil
}

// refreshMessageStatus sets the message status from its recipients'.
func refreshMessageStatus(ctx context.Context, tx *sql.Tx, id string) error {
	rows, err := tx.QueryContext(ctx, `SELECT status FROM recipients WHERE message_id = $1 ORDER BY position`, id)
	if err != nil {
		return fmt.Errorf("message %s status: %w", id, err)
	}
	var statuses []string
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			rows.Close()
			return fmt.Errorf("message %s status: %w", id, err)
		}
		statuses = append(statuses, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("message %s status: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE messages SET status = $2 WHERE id = $1`,
		id, SummarizeStatus(statuses)); err != nil {
		return fmt.Errorf("message %s status: %w", id, err)
	}
	return nil
}
