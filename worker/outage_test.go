package worker

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/dbfault"
	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// TestOutcomeWriteFailureSendsOnce: on SQLite, the write of a relay's 250
// fails once (the statement on a broken connection, or a COMMIT whose
// answer is lost after it committed). The worker keeps the outcome and
// writes it again instead of failing the task, so the task's next run
// finds nothing to send: the sink got one copy, the recipient is sent with
// one event, and nothing is flagged possibly duplicated.
func TestOutcomeWriteFailureSendsOnce(t *testing.T) {
	tests := []struct {
		name string
		arm  func(f *dbfault.Faults)
	}{
		// Not driver.ErrBadConn: database/sql runs a statement that failed with
		// it again by itself (the driver promises it was not sent).
		{"statement fails", func(f *dbfault.Faults) { f.FailStatement("UPDATE recipients", io.ErrUnexpectedEOF) }},
		{"commit answer lost", func(f *dbfault.Faults) { f.LoseCommit("UPDATE recipients", io.ErrUnexpectedEOF) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			faults := &dbfault.Faults{}
			r := newRigOn(t, store.Config{URL: testsvc.SQLiteURL(t), WrapConnector: faults.Wrap}, nil, fastTimeouts())
			var waits []time.Duration
			r.d.cfg.Sleep = func(_ context.Context, d time.Duration) error {
				waits = append(waits, d)
				return nil
			}
			r.sink.SetDecide(func(string, string, []byte) smtptest.Action {
				tt.arm(faults) // the start is written; the outcome is next
				return smtptest.Action{}
			})
			id := r.accept([]string{"ann@example.org"}, nil, nil)
			for run := 0; ; run++ { // as asynq would run the task again
				err := r.d.Deliver(ctx, id, 0)
				if err == nil {
					break
				}
				if run == 2 {
					t.Fatalf("Deliver keeps failing: %v", err)
				}
			}
			if faults.Fired() != 1 || len(waits) != 1 {
				t.Fatalf("faults fired %d, waits %v; want one fault and one retry", faults.Fired(), waits)
			}
			m := r.message(id)
			if n := len(r.sink.Messages()); n != 1 || m.Status != store.StatusSent || m.PossiblyDuplicated {
				t.Fatalf("sink got %d copies, message %s flagged %v; want one copy, sent, not flagged",
					n, m.Status, m.PossiblyDuplicated)
			}
			if got := strings.Join(r.eventTypes(id), ","); got != store.EventQueued+","+store.EventSent {
				t.Fatalf("events %s, want queued then sent", got)
			}
		})
	}
}

// TestReleaseWriteFailureKeepsStatus: a recipient held back by a rate
// limit goes back to queued even when that write fails once, so that the
// next attempt sends it without flagging it.
func TestReleaseWriteFailureKeepsStatus(t *testing.T) {
	ctx := context.Background()
	faults := &dbfault.Faults{}
	r := newRigOn(t, store.Config{URL: testsvc.SQLiteURL(t), WrapConnector: faults.Wrap}, nil, fastTimeouts())
	r.d.cfg.Sleep = func(context.Context, time.Duration) error { return nil }
	r.d.deps.Limits = &holdOnce{Limits: r.d.deps.Limits, arm: func() {
		faults.FailStatement("UPDATE recipients", driver.ErrBadConn)
	}}
	id := r.accept([]string{"ann@example.org"}, nil, nil)
	var held *heldBack
	if err := r.d.Deliver(ctx, id, 0); !errors.As(err, &held) {
		t.Fatalf("first attempt = %v, want held back", err)
	}
	if faults.Fired() != 1 {
		t.Fatalf("faults fired %d, want 1", faults.Fired())
	}
	if st := r.message(id).Recipients[0].Status; st != store.StatusQueued {
		t.Fatalf("held-back recipient is %s, want queued", st)
	}
	if err := r.d.Deliver(ctx, id, 0); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
	if m := r.message(id); m.Status != store.StatusSent || m.PossiblyDuplicated || len(r.sink.Messages()) != 1 {
		t.Fatalf("message %s flagged %v after %d sends; want sent once, not flagged",
			m.Status, m.PossiblyDuplicated, len(r.sink.Messages()))
	}
}

// TestPostgresCutUnderRunningWorker: PostgreSQL goes away (every
// connection cut, new ones reset) for two seconds while a few hundred
// messages are being delivered, and comes back. A delivery that failed is
// run again, as asynq would. The sink gets every message exactly once and
// every message ends sent.
func TestPostgresCutUnderRunningWorker(t *testing.T) {
	const messages, workers, cutAt = 300, 16, 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbURL := testsvc.PostgresURL(t)
	proxy := testsvc.StartProxy(t, "127.0.0.1:5432")
	r := newRigOn(t, store.Config{URL: proxy.ViaURL(t, dbURL)}, nil, fastTimeouts())
	var retries atomic.Int64
	r.d.cfg.WriteRetryMax = 200 * time.Millisecond
	r.d.cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		retries.Add(1)
		return sleep(ctx, d)
	}
	restored := make(chan struct{})
	var cutOnce sync.Once
	var accepted atomic.Int64
	r.sink.SetDecide(func(string, string, []byte) smtptest.Action {
		if accepted.Add(1) == cutAt {
			cutOnce.Do(func() {
				proxy.Cut()
				time.AfterFunc(2*time.Second, func() { proxy.Restore(); close(restored) })
			})
		}
		return smtptest.Action{}
	})
	ids := make([]string, messages)
	for i := range ids {
		ids[i] = r.accept([]string{fmt.Sprintf("rcpt%03d@example.org", i)}, nil, nil)
	}
	todo := make(chan string, messages)
	for _, id := range ids {
		todo <- id
	}
	close(todo)
	var wg sync.WaitGroup
	errs := make(chan error, messages)
	for range workers {
		wg.Go(func() {
			for id := range todo {
				errs <- deliverUntilDone(ctx, r.d, id, restored)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	copies := map[string]int{}
	for _, m := range r.sink.Messages() {
		copies[m.To]++
	}
	var dups []string
	for to, n := range copies {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", to, n))
		}
	}
	slices.Sort(dups)
	if len(dups) > 0 || len(copies) != messages {
		t.Errorf("sink: %d addresses, duplicates %v; want %d addresses once each", len(copies), dups, messages)
	}
	flagged := 0
	for _, id := range ids {
		m := r.message(id)
		if m.Status != store.StatusSent {
			t.Errorf("message %s is %s, want sent", id, m.Status)
		}
		if m.PossiblyDuplicated {
			flagged++
		}
	}
	// A start whose COMMIT went through but whose answer the cut lost is
	// started again and flagged, although it was sent once (checked
	// above): the start carries no token to recognise its own earlier
	// attempt. That false flag is not a duplicate and is only counted.
	t.Logf("%d of %d messages flagged possibly duplicated by a start whose answer was lost", flagged, messages)
	if retries.Load() == 0 {
		t.Error("no outcome write was retried: the cut hit no delivery in flight")
	}
}

// deliverUntilDone runs the send task of id until it succeeds; after a
// failure during the outage it waits for the database to come back, as
// asynq's retry delay would.
func deliverUntilDone(ctx context.Context, d *Deliverer, id string, restored <-chan struct{}) error {
	for {
		err := d.Deliver(ctx, id, 0)
		if err == nil {
			return nil
		}
		select {
		case <-restored:
		case <-ctx.Done():
			return fmt.Errorf("deliver %s: %w (last error)", id, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("deliver %s: %w", id, err)
		}
	}
}

// holdOnce holds the first send back for a minute, arming a fault first
// (the release of the held-back recipient is the next write), and lets
// every later one through.
type holdOnce struct {
	Limits
	arm  func()
	done bool
}

func (h *holdOnce) Reserve(ctx context.Context, req ratelimit.Request) (ratelimit.Reservation, error) {
	if !h.done {
		h.done = true
		h.arm()
		return ratelimit.Reservation{RetryAfter: time.Minute, Scope: ratelimit.ScopeRelay}, nil
	}
	return h.Limits.Reserve(ctx, req)
}
