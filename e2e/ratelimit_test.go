package e2e

import (
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestRatesAcrossWorkers: a limit of 10/s in each scope (relay, recipient
// domain, sender domain, API key), two worker processes, 60 messages. The
// sink notes when each arrives: every message arrives once; the 60 take at
// least 5 s (the 2nd to the 60th are 59 emission intervals of 0.1 s after
// the 1st, less one interval of GCRA tolerance); and no sliding one-second
// window holds more than 10 + 2 (one interval of tolerance, and one for
// the time a transaction takes between the limit and the sink, which
// varies: a send slower than the next one lands in the next one's window).
// The limit is also used, not only held: the run takes under 12 s.
func TestRatesAcrossWorkers(t *testing.T) {
	const n, perSecond = 60, 10
	tests := []struct {
		scope, relayQuery string
		env               []string
	}{
		{scope: "relay", relayQuery: "rate=10/s"},
		{scope: "recipient domain", env: []string{"MAILGATE_RATE_RECIPIENT_DOMAINS=example.org=10/s"}},
		{scope: "sender domain", env: []string{"MAILGATE_RATE_SENDER_DOMAIN=10/s"}},
		{scope: "key", env: []string{"MAILGATE_RATE_KEY=10/s"}},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			var seen arrivals
			sink := startSink(t, seen.decide)
			env := append([]string{"MAILGATE_RELAYS=" + relayURL(sink.Port, tt.relayQuery),
				"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example", "MAILGATE_WORKER_CONCURRENCY=8"}, tt.env...)
			g := newGateway(t, testsvc.PostgresURL(t), env...)
			token := g.createKey("messages:send", "messages:read")
			c := newClient(t, g.start("api"), token)
			g.start("worker")
			g.start("worker")

			msgs := make([]map[string]any, n)
			for i := range msgs {
				msgs[i] = simpleMessage(i)
			}
			ids := c.sendBatch(msgs)
			if !sink.WaitMessages(n, 60*time.Second) {
				t.Fatalf("sink has %d of %d messages", len(sink.Messages()), n)
			}
			copies := copiesByID(t, sink.Messages())
			for _, id := range ids {
				if copies[id] != 1 {
					t.Errorf("message %s arrived %d times, want 1", id, copies[id])
				}
			}
			times := seen.snapshot()
			worst, at := busiestWindow(times, time.Second)
			span := times[len(times)-1].Sub(times[0])
			t.Logf("%d arrivals over %s; busiest 1 s window holds %d (from arrival %d)",
				len(times), span.Round(time.Millisecond), worst, at)
			if worst > perSecond+2 {
				t.Errorf("%d messages arrived within one second (from arrival %d), limit 10/s allows %d",
					worst, at, perSecond+2)
			}
			if low := time.Duration(n-2) * time.Second / perSecond; span < low {
				t.Errorf("%d messages arrived within %s, limit 10/s needs at least %s", n, span, low)
			}
			if span > 12*time.Second {
				t.Errorf("%d messages took %s: the limit of 10/s is mostly unused", n, span)
			}
		})
	}
}

// busiestWindow is the largest number of times (in order) that fall in one
// window [t, t+w), and the index it starts at.
func busiestWindow(times []time.Time, w time.Duration) (int, int) {
	best, at, j := 0, 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < w {
			j++
		}
		if j-i > best {
			best, at = j-i, i
		}
	}
	return best, at
}
