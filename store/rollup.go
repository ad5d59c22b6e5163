package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event counts (migration 00019) are what the console's overview reads:
// per project, sender domain, bucket and kind, how many events of that
// kind the bucket holds, in minute buckets (the last hour) and hour
// buckets (the last day and week). They are kept off the send path: no
// writer of the event log touches them. A rollup pass (RollUpEvents, run
// every few seconds by the worker) reads the events after a stored
// position, in id order, adds them up and moves the position, all in one
// transaction. Counters updated by the event writers themselves (a
// trigger on events) serialised concurrent sends on the same counter rows
// and cost PostgreSQL batch sending about a third of its rate.

// Count kinds: what an event counts as in event_counts.
const (
	kindAccepted    = "accepted"
	kindSent        = "sent"
	kindDeferred    = "deferred"
	kindFailed      = "failed"
	kindBouncedHard = "bounced_hard"
	kindBouncedSoft = "bounced_soft"
	kindComplained  = "complained"
	kindReplied     = "replied"
	kindSuppressed  = "suppressed"
	kindCancelled   = "cancelled"
)

// Bucket widths of event_counts, stored in seconds.
const (
	minuteBucket = time.Minute
	hourBucket   = time.Hour
)

// MinuteCountsKept is how long minute buckets are kept; each rollup pass
// deletes older ones. The overview's hour window reads the last 61.
const MinuteCountsKept = 3 * time.Hour

// DefaultRollupLagPostgres is Config.RollupLag's default on PostgreSQL.
// PostgreSQL hands out BIGSERIAL ids when rows are inserted, not when
// they commit: a transaction that commits late can make event 10 visible
// after event 11 was rolled up and the position moved past it, and event
// 10 would never be counted. A pass therefore takes only events created
// at least this long ago, by which time the transactions that wrote them
// have committed (a send's transaction lasts milliseconds; this also
// absorbs clock differences between API replicas). An event committed
// later still is missing from the counts: it costs the statistics at
// most, never mail. On SQLite one writer commits at a time, in id order,
// and the pass runs in a write transaction, so no lag is needed.
const DefaultRollupLagPostgres = 30 * time.Second

// countKind is what an event of type typ (with data, read for bounces
// only) counts as, or "" for an event not counted (an auto-reply, a
// domain or webhook event). A bounce whose data has no type counts as
// soft, the conservative reading.
func countKind(typ, data string) string {
	switch typ {
	case EventQueued:
		return kindAccepted
	case EventSent:
		return kindSent
	case EventDeferred:
		return kindDeferred
	case EventFailed:
		return kindFailed
	case EventBounced:
		var d struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal([]byte(data), &d) // a bad row counts as soft
		if d.Type == "hard" {
			return kindBouncedHard
		}
		return kindBouncedSoft
	case EventComplained:
		return kindComplained
	case EventReplied:
		return kindReplied
	case EventSuppressed:
		return kindSuppressed
	case EventCancelled:
		return kindCancelled
	}
	return ""
}

// countKey is one row of event_counts.
type countKey struct {
	project, domain string
	width           int64 // seconds
	start           int64 // Unix µs
	kind            string
}

// rollup is what one pass read: the counts to add, the position reached
// and how many events it took.
type rollup struct {
	counts      map[countKey]int64
	last        int64 // id of the last event taken
	lastCreated int64 // its created_at
	taken       int
}

// RollUpEvents adds up to limit events after the rollup's position into
// the event counts and moves the position past them, in one transaction,
// and returns how many events it took: fewer than limit means it caught
// up, so callers loop while it returns limit. It takes events in id order
// up to the first created less than the rollup lag (Config.RollupLag)
// before now. Events without a message (a domain's, a webhook's) and of
// types not counted move the position and count nothing. Minute buckets
// are counted for events of the last MinuteCountsKept only, and older
// minute buckets are deleted.
//
// Concurrent passes (several workers) are safe: each locks the position
// row first (SELECT … FOR UPDATE on PostgreSQL; SQLite's write
// transactions run one at a time), so the second starts where the first
// ended and no event is counted twice.
func (s *Store) RollUpEvents(ctx context.Context, now time.Time, limit int) (int, error) {
	var taken int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		lock := ""
		if s.dialect == DialectPostgres {
			lock = " FOR UPDATE"
		}
		var pos, asOf int64
		if err := tx.QueryRowContext(ctx, `SELECT last_event_id, as_of FROM event_rollup WHERE id = 1`+lock).
			Scan(&pos, &asOf); err != nil {
			return fmt.Errorf("read position: %w", err)
		}
		cutoff := micros(now.Add(-s.rollupLag))
		r, err := readRollup(ctx, tx, pos, cutoff, micros(now.Add(-MinuteCountsKept)), limit)
		if err != nil {
			return err
		}
		taken = r.taken
		if err := s.addCounts(ctx, tx, r.counts); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM event_counts WHERE width = $1 AND bucket_start < $2`,
			int64(minuteBucket/time.Second), micros(now.Add(-MinuteCountsKept))); err != nil {
			return fmt.Errorf("prune minute counts: %w", err)
		}
		// Caught up, the counts hold every event before the cutoff; in a
		// backlog, those up to the last one taken.
		reached := cutoff
		if r.taken == limit {
			reached = r.lastCreated
		}
		if r.taken > 0 {
			pos = r.last
		}
		_, err = tx.ExecContext(ctx, `UPDATE event_rollup SET last_event_id = $1, as_of = $2 WHERE id = 1`,
			pos, max(asOf, reached))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("roll up events: %w", err)
	}
	return taken, nil
}

// readRollup reads up to limit events after pos, in id order, up to the
// first created at or after cutoff, and adds them up: hour buckets for
// every event, minute buckets for those created at or after minutesFrom.
// Only a bounce's data is read (its type, hard or soft).
func readRollup(ctx context.Context, tx *sql.Tx, pos, cutoff, minutesFrom int64, limit int) (rollup, error) {
	rows, err := tx.QueryContext(ctx, `SELECT e.id, e.created_at, e.type, e.project_id, COALESCE(m.from_domain, ''),
			CASE WHEN e.type = '`+EventBounced+`' THEN e.data ELSE '' END
		FROM events e LEFT JOIN messages m ON m.id = e.message_id
		WHERE e.id > $1 ORDER BY e.id LIMIT $2`, pos, limit)
	if err != nil {
		return rollup{}, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	r := rollup{counts: map[countKey]int64{}}
	for rows.Next() {
		var id, created int64
		var typ, project, domain, data string
		if err := rows.Scan(&id, &created, &typ, &project, &domain, &data); err != nil {
			return rollup{}, fmt.Errorf("read events: %w", err)
		}
		if created >= cutoff {
			break
		}
		r.last, r.lastCreated = id, created
		r.taken++
		kind := countKind(typ, data)
		if kind == "" || domain == "" {
			continue
		}
		r.counts[bucketKey(project, domain, hourBucket, created, kind)]++
		if created >= minutesFrom {
			r.counts[bucketKey(project, domain, minuteBucket, created, kind)]++
		}
	}
	if err := rows.Err(); err != nil {
		return rollup{}, fmt.Errorf("read events: %w", err)
	}
	return r, nil
}

// bucketKey is the row of width counting an event created at created
// (Unix µs).
func bucketKey(project, domain string, width time.Duration, created int64, kind string) countKey {
	us := width.Microseconds()
	return countKey{project: project, domain: domain, width: int64(width / time.Second),
		start: created - created%us, kind: kind}
}

// addCounts adds counts to event_counts, in key order.
func (s *Store) addCounts(ctx context.Context, tx *sql.Tx, counts map[countKey]int64) error {
	if len(counts) == 0 {
		return nil
	}
	keys := make([]countKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b countKey) int {
		return cmp.Or(strings.Compare(a.project, b.project), cmp.Compare(a.width, b.width),
			cmp.Compare(a.start, b.start), strings.Compare(a.domain, b.domain), strings.Compare(a.kind, b.kind))
	})
	args := make([]any, 0, 6*len(keys))
	for _, k := range keys {
		args = append(args, k.project, k.domain, k.width, k.start, k.kind, counts[k])
	}
	err := s.insertRows(ctx, tx, `INSERT INTO event_counts (project_id, from_domain, width, bucket_start, kind, count)`,
		6, args, ` ON CONFLICT (project_id, width, bucket_start, from_domain, kind)
			DO UPDATE SET count = event_counts.count + excluded.count`)
	if err != nil {
		return fmt.Errorf("add event counts: %w", err)
	}
	return nil
}

// ExpireEventCounts deletes up to limit hour buckets of the event counts
// that end before before (retention: they are kept as long as the events
// they count), the oldest first. Fewer than limit deleted means none is
// left for now. Minute buckets are the rollup's (RollUpEvents).
func (s *Store) ExpireEventCounts(ctx context.Context, before time.Time, limit int) (int64, error) {
	// A bucket ends an hour after its start: it goes once that is before
	// before, i.e. once its start is at or before before - 1h.
	return s.expireByTime(ctx, "expire event counts", `DELETE FROM event_counts
		WHERE (project_id, width, bucket_start, from_domain, kind) IN (
		SELECT project_id, width, bucket_start, from_domain, kind FROM event_counts
		WHERE width = `+fmt.Sprint(int64(hourBucket/time.Second))+` AND bucket_start <= $1
		ORDER BY bucket_start LIMIT $2%s)`, before.Add(-hourBucket), limit)
}
