package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// BenchmarkRollUp measures what the overview's rollup costs: one catch-up
// over 100,000 events (50,000 messages of two recipients, over 10 sender
// domains and two hours), in passes of 5,000 as the worker runs them, on
// each engine. It reports the time per pass and per event; the events are
// written before the timer starts.
// Run: go test ./store -run '^$' -bench RollUp -benchtime 1x -count 3 -timeout 30m
func BenchmarkRollUp(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				s, now := rollupBenchStore(b, engine, 50000)
				b.StartTimer()
				passes, events := 0, 0
				for {
					n, err := s.RollUpEvents(context.Background(), now, 5000)
					if err != nil {
						b.Fatal(err)
					}
					passes++
					events += n
					if n < 5000 {
						break
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(passes*b.N), "ms/pass")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events*b.N), "ns/event")
				_ = s.Close()
			}
		})
	}
}

// rollupBenchStore is a fresh store of engine holding messages messages
// of two recipients, and a time after all of them (past the lag).
func rollupBenchStore(b *testing.B, engine string, messages int) (*Store, time.Time) {
	ctx := context.Background()
	url := testsvc.SQLiteURL(b)
	if engine == "postgres" {
		url = testsvc.PostgresURL(b)
	}
	s, err := Open(ctx, Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(-2 * time.Hour)
	for i := 0; i < messages; i += 500 {
		batch := make([]NewMessage, 500)
		for j := range batch {
			at := start.Add(time.Duration(i+j) * 2 * time.Hour / time.Duration(messages))
			batch[j] = fromDomain(newMsg(uuid.Must(uuid.NewV7()).String(), at, "a@example.org", "b@example.org"),
				fmt.Sprintf("d%d.example", (i+j)%10))
		}
		if _, err := s.CreateMessages(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	return s, time.Now().Add(time.Minute)
}
