package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Retention deletes what is older than its age, one bounded batch per
// call, each batch its own short transaction, so that the hot writes
// (messages created, deliveries recorded) wait at most for one batch. The
// caller (the worker's reconciler) loops until a batch comes back short.
//
// Only messages in a final status go (FinalStatuses); their recipients,
// tags, payloads and batch membership (a column of the row) go with them
// through ON DELETE CASCADE, and their events explicitly, after the rows
// that reference events (eventDependents). Suppressions and soft-bounce
// counts are never deleted.
//
// A webhook delivery still pending (pendingDelivery) holds its event, and
// the event's message, back: it is delivered from the event's row, so
// retention skips both until the delivery is delivered or exhausted (or
// its endpoint deleted). Deliveries that are done go with their event
// (ON DELETE CASCADE); test deliveries, which have no event, go by the
// events' age (ExpireTestDeliveries).
//
// Each batch picks its rows by an indexed range (messages by status and
// created_at, events by id, inbound mail by received_at, idempotency
// records by created_at). On PostgreSQL the picked rows are locked with
// FOR UPDATE SKIP LOCKED, so two workers cleaning up at once take
// different rows; on SQLite the single writer runs one batch at a time.

// FinalStatuses are the message statuses nothing changes any more but a
// late report (a bounce or complaint after "sent"); only messages in one
// of them are deleted by retention.
var FinalStatuses = []string{StatusSent, StatusFailed, StatusBounced, StatusComplained,
	StatusSuppressed, StatusCancelled, StatusPartial}

// eventDependents are the statements, run in order before events are
// deleted, that delete the rows referencing those events; %s is a
// subquery of the event ids going. A table that references events(id)
// with ON DELETE CASCADE needs none (its rows go with their event, through
// an index on the referencing column); one without it is added here, as
// "DELETE FROM t WHERE event_id IN (%s)". Events are deleted only through
// deleteEventsWhere, so this is the one place.
var eventDependents = []string{}

// pendingDelivery is the condition on webhook_deliveries d that it is
// still to be attempted: pending or failed (its next attempt scheduled, or
// waiting for its endpoint to be enabled again), or made due again by a
// retry whatever its status.
const pendingDelivery = `(d.status IN ('` + DeliveryPending + `', '` + DeliveryFailed + `') OR d.next_attempt_at IS NOT NULL)`

// noPendingDelivery is the condition on events e that no pending webhook
// delivery references it.
const noPendingDelivery = `NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND ` + pendingDelivery + `)`

// lockRows is what a batch's SELECT ends with on the dialect: on
// PostgreSQL it locks the rows picked and skips those another cleanup
// holds.
func (s *Store) lockRows() string {
	if s.dialect == DialectPostgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// idList is the placeholders of n ids, the only parameters of their
// statement: plain ? on SQLite, which binds thousands of numbered
// parameters slowly (see valuesList).
func (s *Store) idList(n int) string {
	if s.dialect == DialectSQLite {
		return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
	}
	return placeholders(1, n)
}

// deleteEventsWhere deletes the events the subquery sub (selecting event
// ids, with args) names, their dependents first.
func deleteEventsWhere(ctx context.Context, tx *sql.Tx, sub string, args ...any) (int64, error) {
	for _, dep := range eventDependents {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(dep, sub), args...); err != nil {
			return 0, fmt.Errorf("delete event dependents: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (`+sub+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("delete events: %w", err)
	}
	return res.RowsAffected()
}

// pickStrings runs query in tx and returns its first column.
func pickStrings(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ExpiredMessages is one batch's result of ExpireMessages.
type ExpiredMessages struct {
	// Messages is how many messages were deleted; Events how many of
	// their events went with them.
	Messages, Events int64
}

// ExpireMessages deletes up to limit messages in status (one of
// FinalStatuses) created before before, the oldest first, with their
// recipients, tags, payloads and events; a message with an event a webhook
// delivery is still pending for stays. Fewer than limit deleted means
// none is left for now.
func (s *Store) ExpireMessages(ctx context.Context, status string, before time.Time, limit int) (ExpiredMessages, error) {
	var out ExpiredMessages
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := pickStrings(ctx, tx, `SELECT id FROM messages m WHERE status = $1 AND created_at < $2
			AND NOT EXISTS (SELECT 1 FROM events e JOIN webhook_deliveries d ON d.event_id = e.id
				WHERE e.message_id = m.id AND `+pendingDelivery+`)
			ORDER BY created_at LIMIT $3`+s.lockRows(), status, micros(before), limit)
		if err != nil || len(ids) == 0 {
			return err
		}
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		in := s.idList(len(ids))
		if out.Events, err = deleteEventsWhere(ctx, tx, `SELECT id FROM events WHERE message_id IN (`+in+`)`, args...); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id IN (`+in+`)`, args...)
		if err != nil {
			return err
		}
		out.Messages, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return ExpiredMessages{}, fmt.Errorf("expire %s messages: %w", status, err)
	}
	return out, nil
}

// ContentCursor is where ExpireContent resumes within one status: the
// created_at and id of the last message it looked at. A message's row
// outlives its payload, so without it each pass would read again every
// message whose payload is already gone. The zero value starts at the
// oldest message.
type ContentCursor struct {
	CreatedAt time.Time
	ID        string
}

// ExpireContent deletes the stored payloads (the request, text and HTML)
// of up to limit messages in status (one of FinalStatuses) created before
// before, after cursor in (created_at, id) order, and returns how many
// payloads went, how many messages it looked at (fewer than limit: none
// is left for now) and the cursor to resume from. The message rows, their
// recipients and events stay.
func (s *Store) ExpireContent(ctx context.Context, status string, before time.Time, cursor ContentCursor,
	limit int) (deleted int64, seen int, next ContentCursor, err error) {
	next = cursor
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, created_at FROM messages
			WHERE status = $1 AND created_at < $2 AND created_at >= $3 AND (created_at > $3 OR id > $4)
			ORDER BY created_at, id LIMIT $5`, status, micros(before), micros(cursor.CreatedAt), cursor.ID, limit)
		if err != nil {
			return err
		}
		var args []any
		for rows.Next() {
			var created int64
			if err := rows.Scan(&next.ID, &created); err != nil {
				rows.Close()
				return err
			}
			next.CreatedAt = fromMicros(created)
			args = append(args, next.ID)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil || len(args) == 0 {
			return err
		}
		seen = len(args)
		res, err := tx.ExecContext(ctx, `DELETE FROM message_payloads WHERE message_id IN (`+
			s.idList(len(args))+`)`, args...)
		if err != nil {
			return err
		}
		deleted, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, 0, cursor, fmt.Errorf("expire %s message content: %w", status, err)
	}
	return deleted, seen, next, nil
}

// ExpireEvents deletes events created before before, in id order, up to
// limit, the rows referencing them first; events belong to messages or,
// with no message, to their project. An event a webhook delivery is still
// pending for stays (and is passed over). It stops at the first event that is
// not old: ids grow with time, so the rest are newer. done reports that
// no old event is left for now.
func (s *Store) ExpireEvents(ctx context.Context, before time.Time, limit int) (deleted int64, done bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT e.id, e.created_at FROM events e WHERE `+noPendingDelivery+`
			ORDER BY e.id LIMIT $1`+s.lockRows(), limit)
		if err != nil {
			return err
		}
		var ids []any
		cut := micros(before)
		for rows.Next() {
			var id, created int64
			if err := rows.Scan(&id, &created); err != nil {
				rows.Close()
				return err
			}
			if created >= cut {
				break
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		done = len(ids) < limit
		if len(ids) == 0 {
			return nil
		}
		deleted, err = deleteEventsWhere(ctx, tx, `SELECT id FROM events WHERE id IN (`+s.idList(len(ids))+`)`, ids...)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("expire events: %w", err)
	}
	return deleted, done, nil
}

// ExpireTestDeliveries deletes up to limit test deliveries (those with no
// event) created before before and no longer pending, the oldest first.
// Fewer than limit deleted means none is left for now. Deliveries of
// events go with their event (ExpireEvents, ExpireMessages).
func (s *Store) ExpireTestDeliveries(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.expireByTime(ctx, "expire test webhook deliveries", `DELETE FROM webhook_deliveries WHERE id IN (
		SELECT d.id FROM webhook_deliveries d WHERE d.event_id IS NULL AND d.created_at < $1 AND NOT `+
		pendingDelivery+` ORDER BY d.created_at LIMIT $2%s)`, before, limit)
}

// ExpireInbound deletes up to limit inbound mail records (the report
// summary and the raw head) received before before, the oldest first.
// Fewer than limit deleted means none is left for now.
func (s *Store) ExpireInbound(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.expireByTime(ctx, "expire inbound mail", `DELETE FROM inbound WHERE id IN (
		SELECT id FROM inbound WHERE received_at < $1 ORDER BY received_at LIMIT $2%s)`, before, limit)
}

// ExpireIdempotencyKeys deletes up to limit idempotency records created
// before before, the oldest first. Fewer than limit deleted means none is
// left for now. A record is honoured for IdempotencyTTL: before should be
// at least that long ago.
func (s *Store) ExpireIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.expireByTime(ctx, "expire idempotency keys", `DELETE FROM idempotency_keys WHERE (key_id, idem_key) IN (
		SELECT key_id, idem_key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2%s)`,
		before, limit)
}

// expireByTime runs del, one DELETE whose subquery picks up to limit rows
// ($2) older than before ($1) and ends with %s, where the dialect's row
// lock goes.
func (s *Store) expireByTime(ctx context.Context, what, del string, before time.Time, limit int) (int64, error) {
	res, err := s.db.ExecContext(ctx, fmt.Sprintf(del, s.lockRows()), micros(before), limit)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}
