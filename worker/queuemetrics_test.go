package worker

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// queueMetricsRedisDB is this file's Redis database (see testsvc.RedisURLDB).
const queueMetricsRedisDB = 15

func openQueueMetricsRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(t, queueMetricsRedisDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	return rdb
}

// TestQueueCollector: tasks enqueued, scheduled and archived through asynq
// show up by state; a queue never used reports zeros; the collector passes
// the Prometheus lint.
func TestQueueCollector(t *testing.T) {
	rdb := openQueueMetricsRedis(t)
	ac := asynq.NewClientFromRedisClient(rdb)
	enqueue := func(id string, opts ...asynq.Option) {
		t.Helper()
		opts = append(opts, asynq.TaskID(id), asynq.Queue(queue.QueueSend))
		if _, err := ac.Enqueue(asynq.NewTask(queue.TypeSend, []byte(`{"message_id":"`+id+`"}`)), opts...); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	for _, id := range []string{"p1", "p2", "p3"} {
		enqueue(id)
	}
	enqueue("s1", asynq.ProcessIn(time.Hour))
	enqueue("s2", asynq.ProcessIn(2*time.Hour))
	if err := asynq.NewInspectorFromRedisClient(rdb).ArchiveTask(queue.QueueSend, "p3"); err != nil {
		t.Fatalf("archive: %v", err)
	}

	c := NewQueueCollector(rdb, []string{queue.QueueSend, "webhook"})
	want := `
# HELP mailgate_queue_size Tasks in an asynq queue, by state.
# TYPE mailgate_queue_size gauge
mailgate_queue_size{queue="send",state="active"} 0
mailgate_queue_size{queue="send",state="archived"} 1
mailgate_queue_size{queue="send",state="pending"} 2
mailgate_queue_size{queue="send",state="retry"} 0
mailgate_queue_size{queue="send",state="scheduled"} 2
mailgate_queue_size{queue="webhook",state="active"} 0
mailgate_queue_size{queue="webhook",state="archived"} 0
mailgate_queue_size{queue="webhook",state="pending"} 0
mailgate_queue_size{queue="webhook",state="retry"} 0
mailgate_queue_size{queue="webhook",state="scheduled"} 0
# HELP mailgate_collector_up 1 if the scrape-time collector read its source, 0 if that failed.
# TYPE mailgate_collector_up gauge
mailgate_collector_up{collector="queue"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "mailgate_queue_size", "mailgate_collector_up"); err != nil {
		t.Error(err)
	}
	oldest := gaugeValues(t, c, "mailgate_queue_oldest_seconds")
	if got := oldest["webhook"]; got != 0 {
		t.Errorf("oldest of an unused queue = %v, want 0", got)
	}
	if got := oldest["send"]; got < 0 || got > 60 {
		t.Errorf("oldest pending task of send = %vs, want between 0 and 60 (enqueued just now)", got)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// gaugeValues gathers c and returns the values of one gauge by its first
// label's value.
func gaugeValues(t *testing.T, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestQueueCollectorRedisDown: an unreachable or silent Redis makes the
// scrape report collector_up 0, without queue series and without hanging.
func TestQueueCollectorRedisDown(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	_ = refused.Close()
	for name, addr := range map[string]string{"refused": refusedAddr, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			t.Cleanup(func() { _ = rdb.Close() })
			c := NewQueueCollector(rdb, []string{queue.QueueSend})
			c.timeout = 200 * time.Millisecond
			want := `
# HELP mailgate_collector_up 1 if the scrape-time collector read its source, 0 if that failed.
# TYPE mailgate_collector_up gauge
mailgate_collector_up{collector="queue"} 0
`
			if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSuppressionCollector: the gauge reports every reason from the store
// (zeros included), and a failing store gives collector_up 0.
func TestSuppressionCollector(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: testsvc.SQLiteURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []store.Suppression{
		{ProjectID: store.DefaultProjectID, Email: "a@example.org", Reason: store.ReasonHardBounce},
		{ProjectID: store.DefaultProjectID, Email: "b@example.org", Reason: store.ReasonHardBounce},
		{ProjectID: store.DefaultProjectID, Email: "c@example.org", Reason: store.ReasonComplaint},
	} {
		if _, err := st.UpsertSuppression(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	c := NewSuppressionCollector(st)
	want := `
# HELP mailgate_suppressions Suppressed addresses across all projects, by reason.
# TYPE mailgate_suppressions gauge
mailgate_suppressions{reason="complaint"} 1
mailgate_suppressions{reason="hard_bounce"} 2
mailgate_suppressions{reason="manual"} 0
mailgate_suppressions{reason="soft_bounces"} 0
# HELP mailgate_collector_up 1 if the scrape-time collector read its source, 0 if that failed.
# TYPE mailgate_collector_up gauge
mailgate_collector_up{collector="suppressions"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	down := `
# HELP mailgate_collector_up 1 if the scrape-time collector read its source, 0 if that failed.
# TYPE mailgate_collector_up gauge
mailgate_collector_up{collector="suppressions"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(down)); err != nil {
		t.Errorf("closed store: %v", err)
	}
}

// TestCollectorsShareARegistry: both scrape-time collectors register in
// one registry (their collector_up series do not collide).
func TestCollectorsShareARegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := reg.Register(NewQueueCollector(rdb, []string{queue.QueueSend})); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(NewSuppressionCollector(nil)); err != nil {
		t.Fatal(err)
	}
}
