// Command console is the web console's benchmark on a large database
// (`make bench` runs it through scripts/bench.sh; it is not a test). Three
// subcommands:
//
//	console seed -db URL [-rows 1000000] [-days 8]
//
// fills a fresh, migrated database (sqlite:PATH or postgres://…) with
// -rows messages of the default project and a tenth as many of a second
// project, spread over the last -days days: skewed sender domains, tags
// and statuses (mostly sent, some deferred, failed, bounced and
// complained, the newest 300 of each project queued), one or two
// recipients, payloads and the events the gateway writes for each
// outcome. It prints how long that took.
//
//	console measure -db URL [-label NAME] [-rounds 200] [-warmup 10] [-max-time 10m]
//
// serves the API with the console in this process on that database,
// signs in with a new read key, and requests each page of the list (first
// and second page, filters, the htmx refresh), a message and the overview
// one at a time, round after round; each request's server time is taken
// inside the server, around its handler. It prints p50, p95 and max per
// page.
//
//	MAILGATE_BENCH_TOKEN=mg_… console browse -url http://127.0.0.1:8089 [-duration 20s] [-every 1s] [-poll 5s]
//
// is an operator at a running gateway's console: one page view a second,
// cycling through the same pages, while the list refreshes itself every 5
// s, for the duration. scripts/bench.sh runs it beside wrk to measure what
// the console costs the send path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/console:", err)
		os.Exit(1)
	}
}

// run runs the subcommand named by args[0].
func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: console seed|measure|browse [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ExitOnError)
	db := fs.String("db", "", "MAILGATE_DATABASE_URL: sqlite:PATH or postgres://… (seed, measure)")
	switch args[0] {
	case "seed":
		rows := fs.Int("rows", 1000000, "messages of the default project")
		days := fs.Int("days", 8, "the messages are spread over this many days before now")
		_ = fs.Parse(args[1:])
		start := time.Now()
		what, err := seed(ctx, *db, seedOptions{rows: *rows, span: time.Duration(*days) * 24 * time.Hour, now: start})
		if err != nil {
			return err
		}
		fmt.Printf("seeded in %.0f s (load average %s): %s\n", time.Since(start).Seconds(), loadAverage(), what)
		return nil
	case "measure":
		o := measureOptions{out: os.Stdout}
		fs.StringVar(&o.label, "label", "", "a label for the result lines (e.g. the engine)")
		fs.IntVar(&o.rounds, "rounds", 200, "measured requests per page")
		fs.IntVar(&o.warmup, "warmup", 10, "requests per page before measuring")
		fs.DurationVar(&o.maxTime, "max-time", 10*time.Minute, "start no measured round after this long")
		_ = fs.Parse(args[1:])
		o.db = *db
		return measure(ctx, o)
	case "browse":
		o := browseOptions{out: os.Stdout, token: os.Getenv("MAILGATE_BENCH_TOKEN")}
		fs.StringVar(&o.base, "url", "http://127.0.0.1:8089", "the gateway's API")
		fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long to browse")
		fs.DurationVar(&o.every, "every", time.Second, "time between page views")
		fs.DurationVar(&o.poll, "poll", 5*time.Second, "time between refreshes of the list")
		_ = fs.Parse(args[1:])
		if o.token == "" {
			return errors.New("set MAILGATE_BENCH_TOKEN to an API key with messages:read")
		}
		return browse(ctx, o)
	}
	return fmt.Errorf("unknown subcommand %q: want seed, measure or browse", args[0])
}
