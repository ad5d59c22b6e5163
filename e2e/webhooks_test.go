package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// heldReceiver is a webhook endpoint on loopback that verifies every
// delivery with the official Standard Webhooks library and holds every
// request until released.
type heldReceiver struct {
	*httptest.Server
	mu        sync.Mutex
	verify    *standardwebhooks.Webhook
	held      map[string]bool // webhook-ids of requests being held
	delivered map[string]bool // webhook-ids answered 204 after verifying
	refused   int
	release   chan struct{}
}

func newHeldReceiver(t *testing.T) *heldReceiver {
	r := &heldReceiver{held: map[string]bool{}, delivered: map[string]bool{}, release: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		r.held[id] = true
		r.mu.Unlock()
		select {
		case <-r.release:
		case <-req.Context().Done():
			return // the sender died
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.verify.Verify(body, req.Header); err != nil {
			r.refused++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.delivered[id] = true
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *heldReceiver) counts() (held, delivered, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held), len(r.delivered), r.refused
}

// TestWebhooksSurviveWorkerKill: a worker killed with webhook deliveries
// in flight, and Redis emptied, loses none: a new worker delivers every
// event once the lease of the killed one's claims lapses (1 minute, which
// dominates the run time), each under the webhook-id of its first attempt,
// every one verifying with the official library.
func TestWebhooksSurviveWorkerKill(t *testing.T) {
	const n = 20
	sink := startSink(t, func(string, string, []byte) smtptest.Action { return smtptest.Action{} })
	recv := newHeldReceiver(t)
	dbURL := testsvc.PostgresURL(t)
	g := newGateway(t, dbURL, "MAILGATE_RELAYS="+relayURL(sink.Port, ""),
		"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example",
		"MAILGATE_WEBHOOK_ALLOW_HTTP=true", "MAILGATE_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8")
	token := g.createKey("messages:send", "messages:read", "webhooks")
	c := newClient(t, g.start("api"), token)
	var ep struct{ ID, Secret string }
	c.do(http.MethodPost, "/v1/webhooks", map[string]any{"url": recv.URL + "/hooks", "events": []string{"message.sent"}},
		&ep, http.StatusCreated)
	verify, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	recv.verify = verify
	worker := g.start("worker")

	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = simpleMessage(i)
	}
	c.sendBatch(msgs)
	waitFor(t, 60*time.Second, "deliveries in flight", func() bool {
		held, _, _ := recv.counts()
		return held >= 8 && len(c.listMessages("sent")) == n
	})
	recv.mu.Lock()
	inFlight := make([]string, 0, len(recv.held))
	for id := range recv.held {
		inFlight = append(inFlight, id)
	}
	recv.mu.Unlock()
	worker.kill()
	flushRedis(t, testsvc.RedisURLDB(t, e2eRedisDB))
	close(recv.release)
	g.start("worker")

	waitFor(t, 150*time.Second, "every event delivered", func() bool {
		_, delivered, _ := recv.counts()
		return delivered == n
	})
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for _, id := range inFlight {
		if !recv.delivered[id] {
			t.Errorf("webhook-id %s, in flight at the kill, never delivered", id)
		}
	}
	if recv.refused != 0 {
		t.Errorf("%d deliveries failed verification", recv.refused)
	}
}
