// Command e2e is mailgate's end-to-end delivery benchmark (`make bench`
// runs it through scripts/bench.sh; it is not a test). It starts an SMTP
// sink on 127.0.0.1 (-sink: an in-process go-smtp server, or Postfix's
// smtp-sink, which scripts/bench.sh uses), starts `mailgate serve` (the
// built binary) with that sink as its only relay and every limit off, registers
// a sender domain with the chosen DKIM algorithms, POSTs n messages of
// about -size bytes, and measures sustained messages per second from the
// first POST to the n-th message received at the sink. Each client mode
// (-modes: "batch", 100 messages per POST /v1/messages/batch, or
// "single", POST /v1/messages from -concurrency clients) runs in turn on
// the same server. With -cpuprofile it takes a CPU profile of the server
// during the run (MAILGATE_PPROF_LISTEN). It flushes the Redis database
// it is given: point it at a private one. With -webhook it also adds a
// webhook endpoint for every event on a receiver on 127.0.0.1 ("fast":
// answers at once, and the run waits for every delivery, two per message,
// queued and sent, reporting the fan-out rate; a duration such as "10s":
// answers that late, to show mail does not wait for a slow endpoint;
// "backlog": answers nothing until every message is at the sink, then
// everything, reporting the rate at which the dispatcher drains the 2n
// deliveries that waited — the fan-out rate when it has the machine. The
// requests held in flight must not outlast the webhook timeout, 15 s, so
// size n for mail to take less than that).
// Besides the rates it reports what the server used per message, CPU time
// and bytes written (from /proc), which a busy machine sways far less.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	bin, db, redis, algorithms, modes, out, cpuProfile, logDir, label, sink, webhook string
	n, size, concurrency, batchConcurrency, workers, relayConns                      int
	profileSeconds                                                                   int
	timeout, profileAfter                                                            time.Duration
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.bin, "bin", "./bin/mailgate", "path of the built mailgate binary")
	flag.StringVar(&o.db, "db", "", "MAILGATE_DATABASE_URL: sqlite:PATH or postgres://… (a fresh database; required)")
	flag.StringVar(&o.redis, "redis", "", "MAILGATE_REDIS_URL of a private Redis; its database is FLUSHED (required)")
	flag.StringVar(&o.algorithms, "algorithms", "rsa,ed25519", `DKIM algorithms of the sender domain: "rsa,ed25519" or "ed25519"`)
	flag.StringVar(&o.modes, "modes", "batch,single", "client modes to run in turn: batch (100 per request), single")
	flag.StringVar(&o.sink, "sink", "go", `the relay: "go" (an in-process go-smtp sink) or the path of Postfix's smtp-sink`)
	flag.IntVar(&o.n, "n", 20000, "messages per mode")
	flag.IntVar(&o.size, "size", 10240, "approximate size of each message's text body in bytes")
	flag.IntVar(&o.concurrency, "concurrency", 32, "concurrent clients in single mode")
	flag.IntVar(&o.batchConcurrency, "batch-concurrency", 4, "concurrent batch requests in batch mode")
	flag.IntVar(&o.workers, "workers", 0, "MAILGATE_WORKER_CONCURRENCY (0: the server's default)")
	flag.IntVar(&o.relayConns, "relay-conns", 10, "max_conns of the relay")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the server, taken during the first mode, to this file")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 10, "length of the CPU profile")
	flag.DurationVar(&o.profileAfter, "profile-after", 0, "start the CPU profile this long after the first mode starts (e.g. to profile delivery alone once the POSTs are done)")
	flag.StringVar(&o.out, "out", "", "append one JSON line per mode to this file")
	flag.StringVar(&o.logDir, "logdir", os.TempDir(), "directory for the server's log")
	flag.StringVar(&o.label, "label", "", "a label for the result lines (e.g. the engine)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up a mode after this long")
	flag.StringVar(&o.webhook, "webhook", "", `a webhook endpoint for every event: "" none, "fast", "backlog" (held until mail is done, then drained), or a receiver answering after a duration ("10s")`)
	flag.Parse()
	return o
}

func main() {
	o := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/e2e:", err)
		os.Exit(1)
	}
}

// result is one mode's figures.
type result struct {
	Label       string  `json:"label"`
	Mode        string  `json:"mode"`
	Algorithms  string  `json:"algorithms"`
	N           int     `json:"n"`
	BodyBytes   int     `json:"body_bytes"`
	AcceptSecs  float64 `json:"accept_seconds"`
	TotalSecs   float64 `json:"total_seconds"`
	AcceptRate  float64 `json:"accepted_per_second"`
	DeliverRate float64 `json:"delivered_per_second"`
	// AtAccepted is how many messages the sink had when the last POST
	// returned; DrainRate is the delivery rate after that, with the API idle.
	AtAccepted int64              `json:"delivered_when_accepted"`
	DrainRate  float64            `json:"drain_per_second"`
	WireBytes  int64              `json:"avg_wire_bytes"`
	Attempts   map[string]float64 `json:"attempts"`
	// AcceptP50Ms and AcceptP99Ms are quantiles of the POST latency in
	// milliseconds, per request: one message in single mode, batchSize in
	// batch mode.
	AcceptP50Ms float64 `json:"accept_p50_ms"`
	AcceptP99Ms float64 `json:"accept_p99_ms"`
	// Webhook is the -webhook setting; HookRate the fan-out rate, webhook
	// deliveries per second from the first POST to the last delivery
	// ("fast" only).
	Webhook  string  `json:"webhook,omitempty"`
	HookRate float64 `json:"webhook_deliveries_per_second,omitempty"`
	// HookDrain is the webhook delivery rate once the last message is at
	// the sink, the dispatcher no longer sharing the machine with mail.
	HookDrain float64 `json:"webhook_drain_per_second,omitempty"`
	// ServerCPUUs is the CPU time (user and system) `mailgate serve` took
	// per message, in microseconds, from the first POST to the n-th
	// message at the sink; ServerWritten the bytes it passed to write
	// calls per message (SQLite's WAL and journals, logs; not
	// PostgreSQL's, written by its server). Both depend far less on what
	// else the machine runs than the rates do. Zero where /proc is
	// missing.
	ServerCPUUs   float64 `json:"server_cpu_us_per_message,omitempty"`
	ServerWritten float64 `json:"server_written_bytes_per_message,omitempty"`
	// Target is the goal in delivered messages per second: 800
	// with dual signing, 1,500 with Ed25519 only.
	Target int `json:"target"`
}

// target is the end-to-end goal for the algorithms.
func target(algorithms string) int {
	if strings.TrimSpace(algorithms) == "ed25519" {
		return 1500
	}
	return 800
}

func run(ctx context.Context, o options) error {
	if o.db == "" || o.redis == "" {
		return errors.New("-db and -redis are required")
	}
	if err := flushRedis(ctx, o.redis); err != nil {
		return fmt.Errorf("flush redis: %w", err)
	}
	s, err := newSink(ctx, o.sink)
	if err != nil {
		return err
	}
	defer s.close()
	g, err := newGateway(o, s.addr.Port)
	if err != nil {
		return err
	}
	token, err := g.run("keys", "create", "--name", "bench", "--scope", "messages:send", "--scope", "domains",
		"--scope", "webhooks")
	if err != nil {
		return err
	}
	token = strings.TrimSpace(token)
	if err := g.start(filepath.Join(o.logDir, "serve-"+safe(o.label)+".log")); err != nil {
		return err
	}
	defer g.stop()
	algs := strings.Split(o.algorithms, ",")
	if err := g.createDomain(ctx, token, "bench.example", algs); err != nil {
		return err
	}
	var hooks *hookReceiver
	if o.webhook != "" {
		delay := time.Duration(0)
		if o.webhook != "fast" && o.webhook != "backlog" {
			if delay, err = time.ParseDuration(o.webhook); err != nil {
				return fmt.Errorf("-webhook: %w", err)
			}
		}
		if hooks, err = startHookReceiver(delay, o.webhook == "backlog"); err != nil {
			return err
		}
		defer hooks.close()
		if err := g.createWebhook(ctx, token, hooks); err != nil {
			return err
		}
	}
	for i, mode := range strings.Split(o.modes, ",") {
		r, err := runMode(ctx, o, g, s, hooks, token, strings.TrimSpace(mode), i == 0 && o.cpuProfile != "")
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		if err := report(o, r); err != nil {
			return err
		}
	}
	return nil
}

// newSink starts the sink -sink names.
func newSink(ctx context.Context, which string) (*sink, error) {
	if which == "go" || which == "" {
		return startSink()
	}
	return startPostfixSink(ctx, which)
}

// runMode posts n messages in one client mode and waits for the n-th at
// the sink.
func runMode(ctx context.Context, o options, g *gateway, s *sink, hooks *hookReceiver, token, mode string, profile bool) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	before, err := g.deliveryCounts()
	if err != nil {
		return result{}, err
	}
	reached := s.expect(int64(o.n))
	var hooksBefore int64
	if hooks != nil {
		hooksBefore = hooks.received.Load()
	}
	profErr := make(chan error, 1)
	if profile {
		go func() {
			time.Sleep(o.profileAfter)
			profErr <- g.profileCPU(o.cpuProfile, o.profileSeconds)
		}()
	}
	gen := newGenerator(o.size)
	lat := &latencies{}
	use0 := g.usage()
	start := time.Now()
	if err := postAll(ctx, o, g.base, token, mode, gen, lat); err != nil {
		return result{}, err
	}
	accepted := time.Since(start)
	atAccepted := s.received.Load()
	var done time.Time
	select {
	case done = <-reached:
	case <-ctx.Done():
		return result{}, fmt.Errorf("%d of %d messages at the sink: %w", s.received.Load(), o.n, ctx.Err())
	}
	use1 := g.usage()
	if profile {
		if err := <-profErr; err != nil {
			return result{}, fmt.Errorf("cpu profile: %w", err)
		}
	}
	after, err := settledCounts(g, before, o.n)
	if err != nil {
		return result{}, err
	}
	r := newResult(o, mode, accepted, done.Sub(start), s, before, after)
	r.Webhook = o.webhook
	if use0.ok && use1.ok {
		r.ServerCPUUs = float64((use1.cpu - use0.cpu).Microseconds()) / float64(o.n)
		r.ServerWritten = float64(use1.written-use0.written) / float64(o.n)
	}
	if o.webhook == "backlog" {
		// Every delivery waited while mail was sent: from here the
		// dispatcher has the machine and a backlog of 2n deliveries.
		released := time.Now()
		hooks.release()
		last, err := hooks.waitHooks(ctx, hooksBefore+2*int64(o.n))
		if err != nil {
			return result{}, err
		}
		r.HookDrain = float64(2*o.n) / last.Sub(released).Seconds()
	}
	if o.webhook == "fast" {
		atDone := hooks.received.Load() - hooksBefore
		last, err := hooks.waitHooks(ctx, hooksBefore+2*int64(o.n))
		if err != nil {
			return result{}, err
		}
		r.HookRate = float64(2*o.n) / last.Sub(start).Seconds()
		if after := last.Sub(done); after > 0 {
			r.HookDrain = float64(2*int64(o.n)-atDone) / after.Seconds()
		}
	}
	r.AtAccepted = atAccepted
	r.AcceptP50Ms, r.AcceptP99Ms = lat.quantile(0.50), lat.quantile(0.99)
	if drain := done.Sub(start) - accepted; drain > 0 {
		r.DrainRate = float64(int64(o.n)-atAccepted) / drain.Seconds()
	}
	return r, nil
}

// settledCounts reads the delivery counters until the run's n attempts
// are counted (the sink sees the last message a moment before the worker
// counts it), for at most 5 s.
func settledCounts(g *gateway, before map[string]float64, n int) (map[string]float64, error) {
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		after, err := g.deliveryCounts()
		if err != nil || after["sent"]-before["sent"] >= float64(n) || time.Now().After(deadline) {
			return after, err
		}
		<-tick.C
	}
}

func newResult(o options, mode string, accepted, total time.Duration, s *sink, before, after map[string]float64) result {
	attempts := map[string]float64{}
	for k, v := range after {
		attempts[k] = v - before[k]
	}
	return result{Label: o.label, Mode: mode, Algorithms: o.algorithms, N: o.n, BodyBytes: o.size,
		AcceptSecs: accepted.Seconds(), TotalSecs: total.Seconds(),
		AcceptRate: float64(o.n) / accepted.Seconds(), DeliverRate: float64(o.n) / total.Seconds(),
		WireBytes: s.bytes.Load() / max(s.received.Load(), 1), Attempts: attempts, Target: target(o.algorithms)}
}

// report prints one line and appends the JSON line to -out.
func report(o options, r result) error {
	verdict := "target met"
	if r.DeliverRate < float64(r.Target) {
		verdict = fmt.Sprintf("target missed (>= %d/s)", r.Target)
	}
	size := "size not counted by the sink"
	if r.WireBytes > 0 {
		size = fmt.Sprintf("%d B/msg", r.WireBytes)
	}
	hooks := ""
	if r.ServerCPUUs > 0 {
		hooks = fmt.Sprintf(", server CPU %.0f µs/msg, written %.0f B/msg", r.ServerCPUUs, r.ServerWritten)
	}
	switch {
	case r.Webhook == "backlog":
		hooks += fmt.Sprintf(", webhook backlog of %d deliveries drained at %.0f/s (target >= 2000/s)", 2*r.N, r.HookDrain)
	case r.HookRate > 0:
		hooks += fmt.Sprintf(", webhook fan-out %.0f deliveries/s, %.0f/s once mail is done (target >= 2000/s)", r.HookRate, r.HookDrain)
	case r.Webhook != "":
		hooks += ", webhook receiver answering after " + r.Webhook
	}
	fmt.Printf("%-9s %-12s %-7s %6d %10.0f %11.0f %8.1f  %-26s accept p50 %.1f ms, p99 %.1f ms per POST, drain %.0f/s after accept (%d sent by then), %s, attempts %v%s\n",
		r.Label, r.Algorithms, r.Mode, r.N, r.AcceptRate, r.DeliverRate, r.TotalSecs, verdict,
		r.AcceptP50Ms, r.AcceptP99Ms, r.DrainRate, r.AtAccepted, size, r.Attempts, hooks)
	if o.out == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(o.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func safe(s string) string {
	if s == "" {
		return "bench"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ',' {
			return '-'
		}
		return r
	}, s)
}
