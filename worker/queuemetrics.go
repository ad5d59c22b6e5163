package worker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/store"
)

// Scrape-time gauges, read from Redis and the database when Prometheus
// scrapes, never cached:
//
//   - mailgate_queue_size: tasks in an asynq queue. Labels: queue (the
//     names given to NewQueueCollector), state (pending, scheduled, retry,
//     active, archived).
//   - mailgate_queue_oldest_seconds: age of the oldest pending task (asynq's
//     queue latency; 0 when nothing is pending). Label: queue.
//   - mailgate_suppressions: suppressed addresses of every project. Label:
//     reason (hard_bounce, complaint, soft_bounces, manual).
//   - mailgate_collector_up: 1 when the last read of a scrape-time
//     collector succeeded, 0 when it failed (its other series are then
//     absent). Label: collector (queue, suppressions).
var (
	queueSizeDesc = prometheus.NewDesc("mailgate_queue_size",
		"Tasks in an asynq queue, by state.", []string{"queue", "state"}, nil)
	queueOldestDesc = prometheus.NewDesc("mailgate_queue_oldest_seconds",
		"Age of the oldest pending task of an asynq queue (0 when none is pending).", []string{"queue"}, nil)
	suppressionsDesc = prometheus.NewDesc("mailgate_suppressions",
		"Suppressed addresses across all projects, by reason.", []string{"reason"}, nil)
	queueUpDesc        = newCollectorUpDesc("queue")
	suppressionsUpDesc = newCollectorUpDesc("suppressions")
)

// newCollectorUpDesc declares mailgate_collector_up for one collector (a
// constant label, so that both collectors can sit in one registry).
func newCollectorUpDesc(collector string) *prometheus.Desc {
	return prometheus.NewDesc("mailgate_collector_up",
		"1 if the scrape-time collector read its source, 0 if that failed.", nil,
		prometheus.Labels{"collector": collector})
}

// collectTimeout bounds one scrape-time read of Redis or the database.
const collectTimeout = 3 * time.Second

// suppressionReasons are always reported, at 0 when no address has them.
func suppressionReasons() []string {
	return []string{store.ReasonHardBounce, store.ReasonComplaint, store.ReasonSoftBounces, store.ReasonManual}
}

// QueueCollector reports the size and age of asynq queues at scrape time.
type QueueCollector struct {
	in      *asynq.Inspector
	queues  []string
	timeout time.Duration
}

// NewQueueCollector returns the collector of mailgate_queue_size and
// mailgate_queue_oldest_seconds for the named queues (queue.Queues' keys),
// read through rdb. A queue that holds no task yet reports zeros.
func NewQueueCollector(rdb redis.UniversalClient, queues []string) *QueueCollector {
	qs := slices.Clone(queues)
	slices.Sort(qs)
	return &QueueCollector{in: asynq.NewInspectorFromRedisClient(rdb), queues: qs, timeout: collectTimeout}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueSizeDesc
	ch <- queueOldestDesc
	ch <- queueUpDesc
}

// Collect implements prometheus.Collector. When Redis fails or does not
// answer within the timeout, it reports mailgate_collector_up{collector="queue"}
// 0 and no queue series.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	infos, err := withTimeout(c.timeout, c.read)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	for _, qi := range infos {
		for _, s := range []struct {
			state string
			n     int
		}{
			{"pending", qi.Pending}, {"scheduled", qi.Scheduled}, {"retry", qi.Retry},
			{"active", qi.Active}, {"archived", qi.Archived},
		} {
			ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(s.n), qi.Queue, s.state)
		}
		ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, qi.Latency.Seconds(), qi.Queue)
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 1)
}

// read returns the state of every configured queue; one that asynq does
// not know yet (nothing was ever enqueued on it) is all zeros.
func (c *QueueCollector) read() ([]asynq.QueueInfo, error) {
	known, err := c.in.Queues()
	if err != nil {
		return nil, fmt.Errorf("list asynq queues: %w", err)
	}
	out := make([]asynq.QueueInfo, 0, len(c.queues))
	for _, q := range c.queues {
		if !slices.Contains(known, q) {
			out = append(out, asynq.QueueInfo{Queue: q})
			continue
		}
		qi, err := c.in.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("read asynq queue %s: %w", q, err)
		}
		out = append(out, *qi)
	}
	return out, nil
}

// SuppressionCounter is the part of store.Store the suppressions collector
// reads.
type SuppressionCounter interface {
	CountSuppressionsByReason(ctx context.Context) (map[string]int64, error)
}

// SuppressionCollector reports mailgate_suppressions at scrape time.
type SuppressionCollector struct {
	src     SuppressionCounter
	timeout time.Duration
}

// NewSuppressionCollector returns the collector of mailgate_suppressions,
// read from src (a *store.Store) at each scrape.
func NewSuppressionCollector(src SuppressionCounter) *SuppressionCollector {
	return &SuppressionCollector{src: src, timeout: collectTimeout}
}

// Describe implements prometheus.Collector.
func (c *SuppressionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- suppressionsDesc
	ch <- suppressionsUpDesc
}

// Collect implements prometheus.Collector. Every known reason is reported
// (0 when unused); on a database error only
// mailgate_collector_up{collector="suppressions"} 0 is.
func (c *SuppressionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.src.CountSuppressionsByReason(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(suppressionsUpDesc, prometheus.GaugeValue, 0)
		return
	}
	for _, r := range suppressionReasons() {
		ch <- prometheus.MustNewConstMetric(suppressionsDesc, prometheus.GaugeValue, float64(counts[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(suppressionsUpDesc, prometheus.GaugeValue, 1)
}

// withTimeout runs read, giving up after d. asynq's Inspector takes no
// context, so a read that outlives d finishes in the background, bounded
// by the Redis client's own read timeout.
func withTimeout[T any](d time.Duration, read func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := read()
		done <- result{v, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-t.C:
		var zero T
		return zero, fmt.Errorf("read timed out after %s", d)
	}
}
