package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Window is a span the overview covers, ending now.
type Window string

// The overview's windows.
const (
	WindowHour Window = "hour"
	WindowDay  Window = "day"
	WindowWeek Window = "week"
)

// Windows are the overview's windows, shortest first.
func Windows() []Window { return []Window{WindowHour, WindowDay, WindowWeek} }

// Valid reports whether w is one of Windows.
func (w Window) Valid() bool { return slices.Contains(Windows(), w) }

// span is the window's length and the width of its buckets: minutes for
// the hour, hours for the day and the week.
func (w Window) span() (length, bucket time.Duration) {
	switch w {
	case WindowDay:
		return 24 * time.Hour, hourBucket
	case WindowWeek:
		return 7 * 24 * time.Hour, hourBucket
	}
	return time.Hour, minuteBucket
}

// Counts are a span's events by kind. Each event concerns one recipient,
// so each count is of recipients.
type Counts struct {
	// Accepted: message.queued, a recipient accepted (to be sent now or
	// scheduled).
	Accepted int64
	// Sent, Deferred, Failed: message.sent, message.deferred (every
	// deferral, so a recipient may count more than once), message.failed.
	Sent, Deferred, Failed int64
	// BouncedHard and BouncedSoft: message.bounced by its type.
	BouncedHard, BouncedSoft int64
	// Complained and Replied: message.complained, message.replied.
	Complained, Replied int64
	// Suppressed and Cancelled: message.suppressed (not sent, the address
	// is suppressed), message.cancelled.
	Suppressed, Cancelled int64
}

// Bounced is BouncedHard + BouncedSoft.
func (c Counts) Bounced() int64 { return c.BouncedHard + c.BouncedSoft }

// add adds n events of kind.
func (c *Counts) add(kind string, n int64) {
	switch kind {
	case kindAccepted:
		c.Accepted += n
	case kindSent:
		c.Sent += n
	case kindDeferred:
		c.Deferred += n
	case kindFailed:
		c.Failed += n
	case kindBouncedHard:
		c.BouncedHard += n
	case kindBouncedSoft:
		c.BouncedSoft += n
	case kindComplained:
		c.Complained += n
	case kindReplied:
		c.Replied += n
	case kindSuppressed:
		c.Suppressed += n
	case kindCancelled:
		c.Cancelled += n
	}
}

// DomainCounts are one sender domain's counts.
type DomainCounts struct {
	Domain string
	Counts
}

// Point is one bucket of a time series: its start and counts.
type Point struct {
	Start time.Time
	Counts
}

// QueueState is what waits to be sent: messages by status.
type QueueState struct {
	// Queued, Sending and Deferred are the messages the gateway owes an
	// attempt now (or is making one); Scheduled those whose send_at has
	// not come.
	Queued, Sending, Deferred, Scheduled int64
	// Oldest is when the oldest queued, sending or deferred message was
	// accepted; nil when there is none. Scheduled messages wait by
	// design and are left out.
	Oldest *time.Time
}

// Depth is Queued + Sending + Deferred.
func (q QueueState) Depth() int64 { return q.Queued + q.Sending + q.Deferred }

// Overview is a project's sending over a window.
type Overview struct {
	Window Window
	// From and To bound the window's buckets, [From, To): To is the end
	// of the bucket holding now, so the last bucket is still filling.
	From, To time.Time
	// Bucket is the width of Series' buckets: a minute for the hour
	// window, an hour for the day and the week.
	Bucket time.Duration
	// Domains are the totals of each sender domain with events in the
	// window, by name.
	Domains []DomainCounts
	// Total sums Domains.
	Total Counts
	// Series has one point per bucket from From to To, oldest first,
	// buckets without events included.
	Series []Point
	// Queue is what waits now.
	Queue QueueState
	// AsOf is the time the counts are complete to (the rollup's
	// position: RollUpEvents); zero before the first pass.
	AsOf time.Time
}

// Overview reads the project's event counts over window (ending at now)
// from the rollup's table, per sender domain and as a time series, and
// the queue from the messages; domain, when set, keeps that sender domain
// only. Each query reads a range of a primary key or index: event_counts
// by (project, width, bucket), messages by (project, status, created_at).
func (s *Store) Overview(ctx context.Context, projectID string, window Window, domain string, now time.Time) (Overview, error) {
	if !window.Valid() {
		return Overview{}, fmt.Errorf("overview: unknown window %q", window)
	}
	length, width := window.span()
	to := now.Truncate(width).Add(width)
	o := Overview{Window: window, From: to.Add(-length), To: to, Bucket: width}
	c := &conds{}
	c.add("project_id = " + c.arg(projectID))
	c.add("width = " + c.arg(int64(width/time.Second)))
	c.add("bucket_start >= " + c.arg(micros(o.From)))
	c.add("bucket_start < " + c.arg(micros(o.To)))
	if domain != "" {
		c.add("from_domain = " + c.arg(domain))
	}
	if err := s.overviewTotals(ctx, c, &o); err != nil {
		return Overview{}, err
	}
	if err := s.overviewSeries(ctx, c, &o); err != nil {
		return Overview{}, err
	}
	var err error
	if o.Queue, err = s.queueState(ctx, projectID, domain); err != nil {
		return Overview{}, err
	}
	var asOf int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT as_of FROM event_rollup WHERE id = 1`).Scan(&asOf); err != nil {
		return Overview{}, fmt.Errorf("overview position: %w", err)
	}
	if asOf > 0 {
		o.AsOf = fromMicros(asOf)
	}
	return o, nil
}

// overviewTotals fills o.Domains and o.Total.
func (s *Store) overviewTotals(ctx context.Context, c *conds, o *Overview) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT from_domain, kind, CAST(SUM(count) AS BIGINT) FROM event_counts`+
		c.sql()+` GROUP BY from_domain, kind ORDER BY from_domain`, c.args...)
	if err != nil {
		return fmt.Errorf("overview totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var domain, kind string
		var n int64
		if err := rows.Scan(&domain, &kind, &n); err != nil {
			return fmt.Errorf("overview totals: %w", err)
		}
		if len(o.Domains) == 0 || o.Domains[len(o.Domains)-1].Domain != domain {
			o.Domains = append(o.Domains, DomainCounts{Domain: domain})
		}
		o.Domains[len(o.Domains)-1].add(kind, n)
		o.Total.add(kind, n)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("overview totals: %w", err)
	}
	return nil
}

// overviewSeries fills o.Series, one point per bucket of the window.
func (s *Store) overviewSeries(ctx context.Context, c *conds, o *Overview) error {
	for t := o.From; t.Before(o.To); t = t.Add(o.Bucket) {
		o.Series = append(o.Series, Point{Start: t})
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT bucket_start, kind, CAST(SUM(count) AS BIGINT) FROM event_counts`+
		c.sql()+` GROUP BY bucket_start, kind`, c.args...)
	if err != nil {
		return fmt.Errorf("overview series: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var start, n int64
		var kind string
		if err := rows.Scan(&start, &kind, &n); err != nil {
			return fmt.Errorf("overview series: %w", err)
		}
		i := int(fromMicros(start).Sub(o.From) / o.Bucket)
		if i >= 0 && i < len(o.Series) {
			o.Series[i].add(kind, n)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("overview series: %w", err)
	}
	return nil
}

// queueState counts the project's messages waiting to be sent, through
// messages_project_status_created_idx (project_id, status, created_at, id).
func (s *Store) queueState(ctx context.Context, projectID, domain string) (QueueState, error) {
	c := &conds{}
	c.add("status IN (" + c.arg(StatusQueued) + ", " + c.arg(StatusSending) + ", " + c.arg(StatusDeferred) +
		", " + c.arg(StatusScheduled) + ")")
	c.add("project_id = " + c.arg(projectID))
	if domain != "" {
		c.add("from_domain = " + c.arg(domain))
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT status, COUNT(*), MIN(created_at) FROM messages`+c.sql()+
		` GROUP BY status`, c.args...)
	if err != nil {
		return QueueState{}, fmt.Errorf("overview queue: %w", err)
	}
	defer rows.Close()
	var q QueueState
	for rows.Next() {
		var status string
		var n int64
		var oldest sql.NullInt64
		if err := rows.Scan(&status, &n, &oldest); err != nil {
			return QueueState{}, fmt.Errorf("overview queue: %w", err)
		}
		switch status {
		case StatusQueued:
			q.Queued = n
		case StatusSending:
			q.Sending = n
		case StatusDeferred:
			q.Deferred = n
		case StatusScheduled:
			q.Scheduled = n
			continue
		}
		if t := timePtr(oldest); t != nil && (q.Oldest == nil || t.Before(*q.Oldest)) {
			q.Oldest = t
		}
	}
	if err := rows.Err(); err != nil {
		return QueueState{}, fmt.Errorf("overview queue: %w", err)
	}
	return q, nil
}
