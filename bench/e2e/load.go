package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// batchSize is the number of messages per batch request.
const batchSize = 100

// generator makes the JSON of message i: the same ~size-byte text body
// (plain words, so neither quoted-printable nor base64 inflates it much),
// one recipient of its own.
type generator struct {
	prefix []byte
	run    atomic.Int64
}

func newGenerator(size int) *generator {
	words := []string{"order", "shipping", "invoice", "delivery", "account", "receipt", "thanks", "parcel"}
	var text strings.Builder
	for i, col := 0, 0; text.Len() < size; i++ {
		w := words[(i*7+i/3)%len(words)]
		if col+len(w) > 72 {
			text.WriteString("\n")
			col = 0
		}
		text.WriteString(w + " ")
		col += len(w) + 1
	}
	body, _ := json.Marshal(text.String())
	prefix := `{"from":"Bench <news@bench.example>","subject":"Your order is on its way","tags":["bench"],"text":` +
		string(body) + `,"to":["rcpt`
	return &generator{prefix: []byte(prefix)}
}

// appendMessage appends message i of this run.
func (g *generator) appendMessage(b []byte, run int64, i int) []byte {
	b = append(b, g.prefix...)
	b = strconv.AppendInt(b, run, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, `@rcpt.bench.example"]}`...)
}

// latencies collects the duration of every POST of a mode, from sending
// the request to reading the whole answer. Safe for concurrent use.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// add records one POST's duration.
func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// quantile returns the q-quantile (nearest rank) in milliseconds, 0 when
// nothing was recorded.
func (l *latencies) quantile(q float64) float64 {
	l.mu.Lock()
	s := slices.Clone(l.d)
	l.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return float64(s[max(0, min(i, len(s)-1))]) / float64(time.Millisecond)
}

// postAll posts o.n messages in the given mode, recording each POST's
// latency in lat.
func postAll(ctx context.Context, o options, base, token, mode string, gen *generator, lat *latencies) error {
	run := gen.run.Add(1)
	switch mode {
	case "single":
		return postSingles(ctx, o, base+"/v1/messages", token, gen, run, lat)
	case "batch":
		return postBatches(ctx, o, base+"/v1/messages/batch", token, gen, run, lat)
	}
	return fmt.Errorf("unknown mode %q (want batch or single)", mode)
}

func httpClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
}

// postSingles: o.concurrency clients, one POST /v1/messages each at a time.
func postSingles(ctx context.Context, o options, url, token string, gen *generator, run int64, lat *latencies) error {
	hc := httpClient(o.concurrency)
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range o.concurrency {
		g.Go(func() error {
			var buf []byte
			for i := int(next.Add(1) - 1); i < o.n; i = int(next.Add(1) - 1) {
				buf = gen.appendMessage(buf[:0], run, i)
				t0 := time.Now()
				if _, err := post(ctx, hc, url, token, buf, http.StatusAccepted); err != nil {
					return err
				}
				lat.add(time.Since(t0))
			}
			return nil
		})
	}
	return g.Wait()
}

// postBatches: o.batchConcurrency clients, batchSize messages per request.
func postBatches(ctx context.Context, o options, url, token string, gen *generator, run int64, lat *latencies) error {
	hc := httpClient(o.batchConcurrency)
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range o.batchConcurrency {
		g.Go(func() error {
			var buf []byte
			for first := int(next.Add(batchSize) - batchSize); first < o.n; first = int(next.Add(batchSize) - batchSize) {
				buf = appendBatch(buf[:0], gen, run, first, min(first+batchSize, o.n))
				t0 := time.Now()
				out, err := post(ctx, hc, url, token, buf, http.StatusOK)
				if err != nil {
					return err
				}
				lat.add(time.Since(t0))
				if err := checkBatch(out, min(first+batchSize, o.n)-first); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func appendBatch(b []byte, gen *generator, run int64, from, to int) []byte {
	b = append(b, `{"messages":[`...)
	for i := from; i < to; i++ {
		if i > from {
			b = append(b, ',')
		}
		b = gen.appendMessage(b, run, i)
	}
	return append(b, "]}"...)
}

// checkBatch: every item of the answer was accepted.
func checkBatch(out []byte, want int) error {
	var r struct {
		Results []struct {
			ID    string          `json:"id"`
			Error json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("batch answer: %w", err)
	}
	ok := 0
	for _, it := range r.Results {
		if it.ID != "" {
			ok++
		} else if len(it.Error) > 0 {
			return fmt.Errorf("batch item refused: %s", bytes.TrimSpace(it.Error))
		}
	}
	if ok != want {
		return fmt.Errorf("batch accepted %d of %d", ok, want)
	}
	return nil
}
