package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// BenchmarkCreateMessagesFanout measures batches of 100 sends (the batch
// route, 4 at a time) on a fresh database without a webhook endpoint and
// with one taking every event, whose fan-out trigger writes a delivery row
// per event in the send's transaction: what webhooks add to the mail path.
// Besides msgs/s (noisy on a shared machine) it reports the benchmark
// process's CPU time and the bytes it wrote (write syscalls: SQLite's WAL
// and journals; PostgreSQL's server is another process) per message.
// Run: go test ./store -run '^$' -bench CreateMessagesFanout -cpu 2 -benchtime 200x -count 3
func BenchmarkCreateMessagesFanout(b *testing.B) {
	for _, endpoints := range []int{0, 1} {
		for _, engine := range []string{"sqlite", "postgres"} {
			b.Run(fmt.Sprintf("%s/endpoints=%d", engine, endpoints), func(b *testing.B) {
				benchFanout(b, engine, endpoints)
			})
		}
	}
}

func benchFanout(b *testing.B, engine string, endpoints int) {
	ctx := context.Background()
	url := testsvc.SQLiteURL(b)
	if engine == "postgres" {
		url = testsvc.PostgresURL(b)
	}
	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.MigrateUp(ctx); err != nil {
		b.Fatal(err)
	}
	for range endpoints {
		if _, err := s.CreateWebhookEndpoint(ctx, WebhookEndpoint{ProjectID: DefaultProjectID,
			URL: "http://127.0.0.1:1/hooks", Enabled: true, SecretSealed: []byte("sealed")}); err != nil {
			b.Fatal(err)
		}
	}
	msgs, written := createBatches(b, s)
	if engine == "sqlite" {
		b.ReportMetric(float64(written)/msgs, "written-B/msg")
	}
	var deliveries int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&deliveries); err != nil ||
		deliveries != endpoints*100*b.N {
		b.Fatalf("%d deliveries (%v), want %d", deliveries, err, endpoints*100*b.N)
	}
}

// usage is the process's CPU time and the bytes it has passed to write
// syscalls (/proc/self/io wchar, 0 where there is none).
// createBatches creates b.N batches of 100 messages (the gateway's batch
// send), two goroutines at a time, timed, and reports messages/s and this
// process's CPU µs per message; it returns the messages created and the
// bytes this process wrote meanwhile.
func createBatches(b *testing.B, s *Store) (msgs float64, written int64) {
	ctx := context.Background()
	b.SetParallelism(2)
	cpu0, w0 := usage()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			batch := make([]NewMessage, 100)
			for i := range batch {
				batch[i] = newMsg(uuid.Must(uuid.NewV7()).String(), time.Now(), "ann@example.org")
			}
			if _, err := s.CreateMessages(ctx, batch, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu1, w1 := usage()
	msgs = float64(100 * b.N)
	b.ReportMetric(msgs/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu1-cpu0)/msgs/1e3, "cpu-us/msg")
	return msgs, w1 - w0
}

func usage() (cpu time.Duration, written int64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	io, _ := os.ReadFile("/proc/self/io")
	for l := range strings.SplitSeq(string(io), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			written, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return cpu, written
}
