package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// browseOptions shape the operator.
type browseOptions struct {
	base, token string
	// every is the pause between the operator's page views, poll that
	// of the list's own refresh.
	every, poll, duration time.Duration
	out                   io.Writer
}

// browse is an operator at the console of a running gateway: signed in
// with the token, one page view every o.every, cycling through the pages
// (the list, its second page, its filters, a message, the overview),
// while the list refreshes its rows every o.poll as its htmx does, until
// o.duration has passed or ctx ends. It prints what it did and how long
// the answers took, seen from the client (an upper bound of the server's
// time).
func browse(ctx context.Context, o browseOptions) error {
	op := newOperator(o.base)
	if err := op.signIn(ctx, o.token); err != nil {
		return err
	}
	next, id, err := op.discover(ctx)
	if err != nil {
		return err
	}
	var views []page
	for _, p := range pages(time.Now(), next, id) {
		if !p.htmx {
			views = append(views, p)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	view, refresh := time.NewTicker(o.every), time.NewTicker(o.poll)
	defer view.Stop()
	defer refresh.Stop()
	codes := map[int]int{}
	var times []time.Duration
	start := time.Now()
	for i := 0; ; {
		p := page{name: "rows", path: "/console/messages/rows", htmx: true}
		select {
		case <-ctx.Done():
			printBrowse(o.out, time.Since(start), codes, times)
			return nil
		case <-view.C:
			p = views[i%len(views)]
			i++
		case <-refresh.C:
		}
		r, err := op.get(ctx, p.path, p.htmx)
		if err != nil {
			if ctx.Err() != nil {
				continue // cut off at the end of the run
			}
			return err
		}
		codes[r.code]++
		times = append(times, r.took)
	}
}

// printBrowse prints the operator's requests, answers and client times.
func printBrowse(out io.Writer, took time.Duration, codes map[int]int, times []time.Duration) {
	slices.Sort(times)
	fmt.Fprintf(out, "operator: %d console requests in %.1f s, answers %v, client time p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
		len(times), took.Seconds(), codes, ms(quantile(times, 0.5)), ms(quantile(times, 0.95)), ms(quantile(times, 1)))
}
