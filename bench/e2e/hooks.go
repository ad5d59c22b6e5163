package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// hookReceiver is a webhook endpoint on 127.0.0.1 that counts the
// deliveries it answers, each after delay (a slow receiver), 204. Built
// held, it answers nothing until release: the dispatcher's requests in
// flight wait, so the endpoint's other deliveries pile up in the database
// as a backlog.
type hookReceiver struct {
	url      string
	delay    time.Duration
	received atomic.Int64
	srv      *http.Server
	// released is closed by release; nil for a receiver never held.
	released chan struct{}
	once     sync.Once
}

func startHookReceiver(delay time.Duration, held bool) (*hookReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &hookReceiver{url: "http://" + ln.Addr().String() + "/hooks", delay: delay}
	if held {
		r.released = make(chan struct{})
	}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if r.released != nil {
			select {
			case <-r.released:
			case <-req.Context().Done():
				return
			}
		}
		if r.delay > 0 {
			select {
			case <-time.After(r.delay):
			case <-req.Context().Done():
				return
			}
		}
		r.received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// release lets a held receiver answer, from now on and what waits.
func (r *hookReceiver) release() {
	if r.released != nil {
		r.once.Do(func() { close(r.released) })
	}
}

func (r *hookReceiver) close() { r.release(); _ = r.srv.Close() }

// createWebhook adds an endpoint for every event type to r.
func (g *gateway) createWebhook(ctx context.Context, token string, r *hookReceiver) error {
	body, _ := json.Marshal(map[string]any{"url": r.url})
	_, err := post(ctx, http.DefaultClient, g.base+"/v1/webhooks", token, body, http.StatusCreated)
	return err
}

// waitHooks waits until the receiver has want deliveries and returns when
// the last arrived.
func (r *hookReceiver) waitHooks(ctx context.Context, want int64) (time.Time, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for r.received.Load() < want {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%d of %d webhook deliveries: %w", r.received.Load(), want, ctx.Err())
		case <-tick.C:
		}
	}
	return time.Now(), nil
}
