package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/internal/testsvc"
)

func TestConcurrentCreateMessages(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		const workers, perWorker = 32, 3
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					key := fmt.Sprintf("w%d-%d", w, i)
					st, err := s.ClaimIdempotencyKey(ctx, "k1", key, []byte("h"), time.Minute)
					if err != nil {
						errs <- err
						return
					}
					m := newMsg(fmt.Sprintf("m-%02d-%02d", w, i), clk.Now(), "a@example.org", "b@example.org")
					idem := &IdempotencyResult{KeyID: "k1", Key: key, Token: st.Token, Respond: fixed(202, "")}
					if _, err := s.CreateMessages(ctx, []NewMessage{m}, idem); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent create: %v", err)
		}
		ids := pageAll(t, s, MessageFilter{Page: Page{Limit: 100}, Recipient: "a@example.org"})
		if len(ids) != workers*perWorker {
			t.Errorf("stored %d messages, want %d", len(ids), workers*perWorker)
		}
		evs, err := s.MessageEvents(ctx, DefaultProjectID, "m-31-02")
		if err != nil || len(evs) != 2 || evs[1].Sequence != 2 {
			t.Errorf("events of last message = %+v, %v", evs, err)
		}
	})
}

// BenchmarkCreateMessages measures single-recipient sends committed by
// many concurrent requests, the API's hot path, with and without an
// Idempotency-Key (claim + finish).
// Run: go test ./store -run '^$' -bench CreateMessages -cpu 2
func BenchmarkCreateMessages(b *testing.B) {
	for name, url := range testsvc.DatabaseURLs(b) {
		ctx := context.Background()
		s, err := Open(ctx, Config{URL: url})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.MigrateUp(ctx); err != nil {
			b.Fatal(err)
		}
		for _, withKey := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/idempotency=%v", name, withKey), func(b *testing.B) {
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := benchSend(ctx, s, withKey); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

func benchSend(ctx context.Context, s *Store, withKey bool) error {
	id := uuid.Must(uuid.NewV7()).String()
	m := newMsg(id, time.Now(), "ann@example.org")
	if !withKey {
		_, err := s.CreateMessages(ctx, []NewMessage{m}, nil)
		return err
	}
	key := "idem-" + id
	st, err := s.ClaimIdempotencyKey(ctx, "k1", key, []byte("h"), time.Minute)
	if err != nil {
		return err
	}
	idem := &IdempotencyResult{KeyID: "k1", Key: key, Token: st.Token, Respond: fixed(202, `{"id":"`+id+`"}`)}
	_, err = s.CreateMessages(ctx, []NewMessage{m}, idem)
	return err
}

// TestConcurrentAppendEvents checks that writers appending to one message
// in their own transactions (worker, inbound, cancel) number its events
// 1, 2, 3, … without gaps or repeats.
func TestConcurrentAppendEvents(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "a@example.org")}, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		const writers = 16
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				errs <- s.inTx(ctx, func(tx *sql.Tx) error {
					evs := []eventInput{{Recipient: "a@example.org", Type: EventDeferred, Data: []byte(`{"code":451}`)}, {Type: EventDeferred}}
					return s.appendEvents(ctx, tx, DefaultProjectID, "m1", evs, clk.Now())
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("append: %v", err)
			}
		}
		evs, err := s.MessageEvents(ctx, DefaultProjectID, "m1")
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		if len(evs) != 1+2*writers {
			t.Fatalf("%d events, want %d", len(evs), 1+2*writers)
		}
		for i, ev := range evs {
			if ev.Sequence != int64(i+1) {
				t.Errorf("event %d has sequence %d", i, ev.Sequence)
			}
		}
		if string(evs[2].Data) != "{}" {
			t.Errorf("event without data = %s, want {}", evs[2].Data)
		}
	})
}
