package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/console"
	"github.com/mailgate/mailgate/store"
)

// measureOptions size a measurement.
type measureOptions struct {
	db, label      string
	rounds, warmup int
	maxTime        time.Duration
	out            io.Writer
}

// timedHandler passes each request's time inside the server, from the
// handler's start to its return, to took (read by the one client).
type timedHandler struct {
	h    http.Handler
	took chan time.Duration
}

func (t timedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t.h.ServeHTTP(w, r)
	t.took <- time.Since(start)
}

// sample is one page's measured requests.
type sample struct {
	page  page
	code  int
	bytes int
	times []time.Duration
}

// measure serves the API with the console in process on the database,
// signs in with a new read key of the default project, and requests every
// page in rounds (warm-up rounds first, not counted), one request at a
// time, until o.rounds rounds or o.maxTime. A page answering 404 in the
// first round is dropped and reported missing.
func measure(ctx context.Context, o measureOptions) error {
	st, err := store.Open(ctx, store.Config{URL: o.db})
	if err != nil {
		return err
	}
	defer st.Close()
	k, token, err := api.NewKey(store.DefaultProjectID, "console-bench", []string{apikey.ScopeRead}, time.Now())
	if err != nil {
		return err
	}
	if err := st.CreateKey(ctx, k); err != nil {
		return err
	}
	if err := catchUp(ctx, st, o); err != nil {
		return err
	}
	srv, err := api.New(api.Config{}, api.Deps{Store: st, Console: func(s *api.Server) (http.Handler, error) {
		return console.New(console.Config{}, console.Deps{Store: st, Ops: s})
	}})
	if err != nil {
		return err
	}
	th := timedHandler{h: srv.Handler(), took: make(chan time.Duration, 16)}
	ts := httptest.NewServer(th)
	defer ts.Close()
	op := newOperator(ts.URL)
	if err := op.signIn(ctx, token); err != nil {
		return err
	}
	next, id, err := op.discover(ctx)
	if err != nil {
		return err
	}
	samples, rounds, err := measureRounds(ctx, op, th.took, pages(time.Now(), next, id), o)
	if err != nil {
		return err
	}
	report(o, samples, rounds)
	return nil
}

// catchUp rolls the event counts the overview reads up to now, as the
// worker does, pass after pass of rollupBatch events, and prints how long
// that took.
func catchUp(ctx context.Context, st *store.Store, o measureOptions) error {
	const rollupBatch = 10000
	start, total := time.Now(), 0
	for {
		n, err := st.RollUpEvents(ctx, time.Now(), rollupBatch)
		if err != nil {
			return err
		}
		total += n
		if n < rollupBatch {
			break
		}
	}
	fmt.Fprintf(o.out, "%s: the overview's event counts rolled up, %d events in %.0f s\n", o.label, total, time.Since(start).Seconds())
	return nil
}

// measureRounds requests the pages round after round.
func measureRounds(ctx context.Context, op *operator, took chan time.Duration, ps []page, o measureOptions) ([]*sample, int, error) {
	samples := make([]*sample, len(ps))
	for i, p := range ps {
		samples[i] = &sample{page: p}
	}
	start := time.Now()
	round := 0
	for ; round < o.warmup+o.rounds && (round < o.warmup || time.Since(start) < o.maxTime); round++ {
		for _, s := range samples {
			if round > 0 && s.code == http.StatusNotFound {
				continue
			}
			drain(took)
			r, err := op.get(ctx, s.page.path, s.page.htmx)
			if err != nil {
				return nil, 0, err
			}
			d := <-took
			s.code, s.bytes = r.code, len(r.body)
			if round >= o.warmup {
				s.times = append(s.times, d)
			}
		}
	}
	return samples, round - o.warmup, nil
}

// drain empties took of the times of earlier requests.
func drain(took chan time.Duration) {
	for {
		select {
		case <-took:
		default:
			return
		}
	}
}

// report prints one line per page: its answer, size, count and server
// time quantiles, against the 100 ms goal for p95.
func report(o measureOptions, samples []*sample, rounds int) {
	fmt.Fprintf(o.out, "console server time, %s, %d measured rounds after %d warm-up, load average %s\n",
		o.label, rounds, o.warmup, loadAverage())
	fmt.Fprintf(o.out, "%-9s %-34s %5s %8s %5s %9s %9s %9s  %s\n", "engine", "page", "code", "bytes", "n", "p50 ms", "p95 ms", "max ms", "verdict")
	for _, s := range samples {
		if s.code == http.StatusNotFound {
			fmt.Fprintf(o.out, "%-9s %-34s %5d %8s %5s %9s %9s %9s  missing (404)\n", o.label, s.page.name, s.code, "-", "-", "-", "-", "-")
			continue
		}
		ts := slices.Clone(s.times)
		slices.Sort(ts)
		p95 := quantile(ts, 0.95)
		verdict := "p95 < 100 ms"
		if p95 >= 100*time.Millisecond {
			verdict = "OVER 100 ms"
		}
		if s.code != http.StatusOK {
			verdict += fmt.Sprintf(" (answer %d)", s.code)
		}
		fmt.Fprintf(o.out, "%-9s %-34s %5d %8d %5d %9.1f %9.1f %9.1f  %s\n", o.label, s.page.name, s.code, s.bytes, len(ts),
			ms(quantile(ts, 0.5)), ms(p95), ms(quantile(ts, 1)), verdict)
	}
}

// quantile is the nearest-rank q-quantile of sorted ts (0 for none).
func quantile(ts []time.Duration, q float64) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	i := int(q*float64(len(ts))+0.999999) - 1
	return ts[min(max(i, 0), len(ts)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAverage is /proc/loadavg's first three fields ("?" elsewhere).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
