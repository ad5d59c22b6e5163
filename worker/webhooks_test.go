package worker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/mailgate/mailgate/internal/dbfault"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/webhook"
)

// hookClock is a clock the test moves by hand.
type hookClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *hookClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *hookClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}

func (c *hookClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// hookReceiver is a real HTTP endpoint on loopback. It verifies every
// delivery with the official Standard Webhooks library against each
// secret in verifiers (all must verify), and answers with answer. The
// deliveries are signed at the fake clock's time, days away from the
// wall clock the library's tolerance compares with, so it verifies the
// signature alone; tests check webhook-timestamp against the fake clock.
type hookReceiver struct {
	*httptest.Server
	mu        sync.Mutex
	verifiers []*standardwebhooks.Webhook
	answer    func(w http.ResponseWriter)
	ids       []string          // webhook-id of every request
	stamps    []string          // webhook-timestamp of every request
	got       map[string][]byte // body by webhook-id, of the verified ones
	refused   int               // deliveries failing verification
}

func newHookReceiver(t *testing.T, secrets ...string) *hookReceiver {
	r := &hookReceiver{got: map[string][]byte{}, answer: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }}
	r.setSecrets(t, secrets...)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		r.stamps = append(r.stamps, req.Header.Get("webhook-timestamp"))
		ok := true
		for _, v := range r.verifiers {
			if err := v.VerifyIgnoringTimestamp(body, req.Header); err != nil {
				ok = false
			}
		}
		answer := r.answer
		if ok {
			r.got[req.Header.Get("webhook-id")] = body
		} else {
			r.refused++
		}
		r.mu.Unlock()
		answer(w)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) setSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verifiers = nil
	for _, s := range secrets {
		v, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		r.verifiers = append(r.verifiers, v)
	}
}

func (r *hookReceiver) setAnswer(a func(w http.ResponseWriter)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = a
}

func (r *hookReceiver) snapshot() (ids []string, got map[string][]byte, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got = map[string][]byte{}
	for k, v := range r.got {
		got[k] = v
	}
	return append([]string(nil), r.ids...), got, r.refused
}

func answerCode(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { w.WriteHeader(code) }
}

// hookRig is a dispatcher on a real store with a fake clock.
type hookRig struct {
	st    *store.Store
	clk   *hookClock
	ring  *keyring.Keyring
	d     *Dispatcher
	cfg   WebhookConfig
	deps  WebhookDeps
	start time.Time
	// faults counts the statements the store runs (dbfault.Faults.Ran).
	faults *dbfault.Faults
}

func newHookRig(t *testing.T, url string) *hookRig {
	t.Helper()
	clk := &hookClock{now: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	faults := &dbfault.Faults{}
	st, err := store.Open(context.Background(), store.Config{URL: url, Now: clk.Now, WrapConnector: faults.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.MigrateUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	client := webhook.New(webhook.Config{AllowHTTP: true, Timeout: 5 * time.Second,
		AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	t.Cleanup(client.Close)
	r := &hookRig{st: st, clk: clk, ring: ring, start: clk.Now(), faults: faults,
		cfg:  WebhookConfig{Now: clk.Now, Jitter: func(d time.Duration) time.Duration { return d }},
		deps: WebhookDeps{Store: st, Client: client, Opener: ring}}
	r.d = NewDispatcher(r.cfg, r.deps)
	return r
}

// endpoint creates an enabled endpoint of the default project with a new
// secret, sealed as the API seals it.
func (r *hookRig) endpoint(t *testing.T, url string) (store.WebhookEndpoint, string) {
	t.Helper()
	secret, _ := webhook.NewSecret()
	id := "ep-" + url
	sealed, err := r.ring.Seal([]byte(secret), webhook.SealAAD(id))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := r.st.CreateWebhookEndpoint(context.Background(), store.WebhookEndpoint{ID: id,
		ProjectID: store.DefaultProjectID, URL: url, Enabled: true, SecretSealed: sealed})
	if err != nil {
		t.Fatal(err)
	}
	return ep, secret
}

// send creates a message with tags and metadata: one message.queued event
// per recipient.
func (r *hookRig) send(t *testing.T, id string, rcpts ...string) {
	t.Helper()
	m := store.NewMessage{ID: id, ProjectID: store.DefaultProjectID, KeyID: "k", From: "shop@shop.example",
		FromDomain: "shop.example", Subject: "s", Tags: []string{"order", "eu"}, Metadata: map[string]string{"order": id},
		Payload: store.Payload{Request: []byte(`{}`), Text: "hi"}, CreatedAt: r.clk.Now()}
	for _, rc := range rcpts {
		m.Recipients = append(m.Recipients, store.NewRecipient{Email: rc, Kind: store.KindTo, Status: store.StatusQueued})
	}
	if _, err := r.st.CreateMessages(context.Background(), []store.NewMessage{m}, nil); err != nil {
		t.Fatal(err)
	}
}

func (r *hookRig) runOnce(t *testing.T) {
	t.Helper()
	if err := r.d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (r *hookRig) deliveries(t *testing.T, ep store.WebhookEndpoint) []store.WebhookDelivery {
	t.Helper()
	ds, _, err := r.st.ListWebhookDeliveries(context.Background(), store.DefaultProjectID, ep.ID,
		store.WebhookDeliveryFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// nextDue is the earliest next attempt of ep's deliveries (zero if none).
func (r *hookRig) nextDue(t *testing.T, ep store.WebhookEndpoint) time.Time {
	var next time.Time
	for _, d := range r.deliveries(t, ep) {
		if d.NextAttemptAt != nil && (next.IsZero() || d.NextAttemptAt.Before(next)) {
			next = *d.NextAttemptAt
		}
	}
	return next
}

func statuses(ds []store.WebhookDelivery) map[string]int {
	out := map[string]int{}
	for _, d := range ds {
		out[d.Status]++
	}
	return out
}

func eachEngine(t *testing.T, fn func(t *testing.T, r *hookRig)) {
	urls := testsvc.DatabaseURLs(t)
	names := make([]string, 0, len(urls))
	for n := range urls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Run(n, func(t *testing.T) { fn(t, newHookRig(t, urls[n])) })
	}
}

// TestWebhookDeliversSigned: every delivery verifies with the Standard
// Webhooks library, carries the message's tags, metadata and sequence,
// and during a rotation verifies with the old and the new secret alike.
func TestWebhookDeliversSigned(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		recv := newHookReceiver(t)
		ep, secret := r.endpoint(t, recv.URL+"/hooks")
		recv.setSecrets(t, secret)
		r.send(t, "m1", "ann@example.org", "bob@example.org")
		r.runOnce(t)
		_, got, refused := recv.snapshot()
		if len(got) != 2 || refused != 0 {
			t.Fatalf("receiver verified %d deliveries, refused %d", len(got), refused)
		}
		recv.mu.Lock()
		for _, ts := range recv.stamps {
			if ts != strconv.FormatInt(r.start.Unix(), 10) {
				t.Errorf("webhook-timestamp %s, want the clock's %d", ts, r.start.Unix())
			}
		}
		recv.mu.Unlock()
		seqs := map[float64]bool{}
		for id, body := range got {
			var p struct {
				Type      string
				Timestamp time.Time
				Data      map[string]any
			}
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Type != store.EventQueued || !p.Timestamp.Equal(r.start) {
				t.Errorf("%s: type %s at %s", id, p.Type, p.Timestamp)
			}
			seqs[p.Data["sequence"].(float64)] = true
			for _, k := range []string{"message_id", "recipient", "tags", "metadata"} {
				if p.Data[k] == nil {
					t.Errorf("%s: data lacks %s: %s", id, k, body)
				}
			}
			if diff := cmp.Diff([]any{"order", "eu"}, p.Data["tags"]); diff != "" {
				t.Errorf("tags (-want +got):\n%s", diff)
			}
		}
		if !seqs[1] || !seqs[2] {
			t.Errorf("sequences %v", seqs)
		}
		if s := statuses(r.deliveries(t, ep)); s[store.DeliveryDelivered] != 2 {
			t.Fatalf("statuses %v", s)
		}

		// Rotation: receivers holding either secret verify for 24 hours.
		newSecret, _ := webhook.NewSecret()
		sealed, _ := r.ring.Seal([]byte(newSecret), webhook.SealAAD(ep.ID))
		if _, err := r.st.RotateWebhookSecret(context.Background(), store.DefaultProjectID, ep.ID, sealed,
			r.clk.Now().Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		recv.setSecrets(t, secret, newSecret)
		r.send(t, "m2", "cat@example.org")
		r.runOnce(t)
		if _, got, refused := recv.snapshot(); len(got) != 3 || refused != 0 {
			t.Fatalf("during the rotation: verified %d, refused %d", len(got), refused)
		}
		r.clk.Advance(25 * time.Hour)
		recv.setSecrets(t, secret)
		r.send(t, "m3", "dan@example.org")
		r.runOnce(t)
		if _, got, refused := recv.snapshot(); len(got) != 3 || refused != 1 {
			t.Fatalf("after the grace period the old secret verifies: verified %d, refused %d", len(got), refused)
		}
	})
}

// TestWebhookReceiverDownThenBack: a receiver failing for a while gets
// every event once it is back, each under the webhook-id of its first
// attempt; the schedule starts at 5 s, then 5 min.
func TestWebhookReceiverDownThenBack(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		recv := newHookReceiver(t)
		ep, secret := r.endpoint(t, recv.URL)
		recv.setSecrets(t, secret)
		recv.setAnswer(answerCode(http.StatusInternalServerError))
		r.send(t, "m1", "a@example.org", "b@example.org", "c@example.org")
		r.runOnce(t)
		firstIDs, _, _ := recv.snapshot()
		if len(firstIDs) != 3 {
			t.Fatalf("first attempts %d", len(firstIDs))
		}
		if next := r.nextDue(t, ep); !next.Equal(r.start.Add(5 * time.Second)) {
			t.Fatalf("second attempt at %s, want +5s", next)
		}
		r.clk.Set(r.nextDue(t, ep))
		r.runOnce(t)
		if next := r.nextDue(t, ep); !next.Equal(r.start.Add(5*time.Second + 5*time.Minute)) {
			t.Fatalf("third attempt at %s, want +5m5s", next)
		}
		recv.setAnswer(answerCode(http.StatusOK))
		r.clk.Set(r.nextDue(t, ep))
		r.runOnce(t)
		ids, got, refused := recv.snapshot()
		if len(got) != 3 || refused != 0 || len(ids) != 9 {
			t.Fatalf("got %d, refused %d, requests %d", len(got), refused, len(ids))
		}
		for _, id := range firstIDs {
			if got[id] == nil {
				t.Errorf("webhook-id %s of a first attempt never delivered", id)
			}
		}
		for _, d := range r.deliveries(t, ep) {
			if d.Status != store.DeliveryDelivered || d.Attempts != 3 || d.NextAttemptAt != nil {
				t.Errorf("delivery %+v", d)
			}
		}
		if e, _ := r.st.WebhookEndpoint(context.Background(), store.DefaultProjectID, ep.ID); e.FailingSince != nil {
			t.Errorf("failing since %v after a delivered attempt", e.FailingSince)
		}
	})
}

// TestWebhookScheduleAndDisabling: on a fake clock, a delivery failing
// every attempt is tried 10 times over about 3 days, then exhausted; an
// endpoint failing for 5 days is disabled, and the event log says so.
func TestWebhookScheduleAndDisabling(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		recv := newHookReceiver(t)
		recv.setAnswer(answerCode(http.StatusBadGateway))
		ep, _ := r.endpoint(t, recv.URL)
		r.send(t, "m1", "a@example.org")
		var at []time.Duration
		for range 20 {
			r.runOnce(t)
			ids, _, _ := recv.snapshot()
			if len(ids) > len(at) {
				at = append(at, r.clk.Now().Sub(r.start))
			}
			next := r.nextDue(t, ep)
			if next.IsZero() {
				break
			}
			r.clk.Set(next)
		}
		var want []time.Duration
		var sum time.Duration
		want = append(want, 0)
		for _, d := range DefaultWebhookSchedule {
			sum += d
			want = append(want, sum)
		}
		if diff := cmp.Diff(want, at); diff != "" {
			t.Fatalf("attempt times (-want +got):\n%s", diff)
		}
		ds := r.deliveries(t, ep)
		if len(ds) != 1 || ds[0].Status != store.DeliveryExhausted || ds[0].Attempts != 10 || *ds[0].ResponseCode != 502 {
			t.Fatalf("after the schedule: %+v", ds)
		}
		if sum < 3*24*time.Hour || sum > 4*24*time.Hour {
			t.Errorf("schedule spans %s", sum)
		}

		// Still failing: a new event just before 5 days keeps it enabled,
		// one after disables it.
		r.clk.Set(r.start.Add(5*24*time.Hour - time.Minute))
		r.send(t, "m2", "b@example.org")
		r.runOnce(t)
		if e, _ := r.st.WebhookEndpoint(context.Background(), store.DefaultProjectID, ep.ID); !e.Enabled {
			t.Fatalf("disabled before 5 days")
		}
		r.clk.Set(r.start.Add(5 * 24 * time.Hour))
		r.send(t, "m3", "c@example.org")
		r.runOnce(t)
		e, _ := r.st.WebhookEndpoint(context.Background(), store.DefaultProjectID, ep.ID)
		if e.Enabled || e.DisabledReason == "" {
			t.Fatalf("endpoint after 5 days failing: %+v", e)
		}
		evs, _, err := r.st.ListEvents(context.Background(), store.DefaultProjectID, store.EventFilter{Type: store.EventWebhookDisabled})
		if err != nil || len(evs) != 1 {
			t.Fatalf("event log: %+v, %v", evs, err)
		}
		ids, _, _ := recv.snapshot()
		r.clk.Advance(48 * time.Hour)
		r.runOnce(t)
		if after, _, _ := recv.snapshot(); len(after) != len(ids) {
			t.Errorf("a disabled endpoint got %d more requests", len(after)-len(ids))
		}
	})
}

// TestWebhookGoneAndRetryAfter: 410 disables the endpoint; 429 and 503
// with Retry-After are tried again when they ask, not on the schedule.
func TestWebhookGoneAndRetryAfter(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		gone := newHookReceiver(t)
		gone.setAnswer(answerCode(http.StatusGone))
		goneEp, _ := r.endpoint(t, gone.URL)
		busy := newHookReceiver(t)
		busy.setAnswer(func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		})
		busyEp, _ := r.endpoint(t, busy.URL)
		r.send(t, "m1", "a@example.org")
		r.runOnce(t)
		e, _ := r.st.WebhookEndpoint(context.Background(), store.DefaultProjectID, goneEp.ID)
		if e.Enabled || e.DisabledReason != "the endpoint answered 410 Gone" {
			t.Fatalf("after 410: %+v", e)
		}
		// The busy endpoint also gets the gone one's webhook.disabled event.
		busyDelivery := func() store.WebhookDelivery {
			for _, d := range r.deliveries(t, busyEp) {
				if d.Status != store.DeliveryPending {
					return d
				}
			}
			t.Fatal("no attempt at the busy endpoint")
			return store.WebhookDelivery{}
		}
		if d := busyDelivery(); d.Attempts != 0 || !d.NextAttemptAt.Equal(r.start.Add(120*time.Second)) {
			t.Fatalf("after 429 Retry-After 120: %+v", d)
		}
		busy.setAnswer(func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", r.start.Add(time.Hour).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		r.runOnce(t) // the disabled event, whether or not it came in the first pass
		before, _, _ := busy.snapshot()
		// The gone endpoint's webhook.disabled delivery is due with the
		// message's when the first pass claimed it too.
		due := 0
		for _, d := range r.deliveries(t, busyEp) {
			if d.NextAttemptAt != nil && !d.NextAttemptAt.After(r.start.Add(120*time.Second)) {
				due++
			}
		}
		if due == 0 {
			t.Fatal("no delivery due at Retry-After")
		}
		r.clk.Advance(119 * time.Second)
		r.runOnce(t)
		if ids, _, _ := busy.snapshot(); len(ids) != len(before) {
			t.Fatalf("tried again before Retry-After: %d requests", len(ids))
		}
		r.clk.Advance(time.Second)
		r.runOnce(t)
		if ids, _, _ := busy.snapshot(); len(ids) != len(before)+due {
			t.Fatalf("not tried when Retry-After allowed: %d requests, %d before, %d due", len(ids), len(before), due)
		}
		if d := busyDelivery(); !d.NextAttemptAt.Equal(r.start.Add(time.Hour)) {
			t.Fatalf("503 with an HTTP-date: next %v", d.NextAttemptAt)
		}
	})
}

// TestWebhookLeaseAfterKill: a dispatcher stopped with attempts in flight
// records nothing; another dispatcher delivers them once the lease lapses,
// under the same webhook-ids. The database is the queue: nothing of it is
// in Redis.
func TestWebhookLeaseAfterKill(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		recv := newHookReceiver(t)
		arrived := make(chan struct{}, 10)
		release := make(chan struct{})
		recv.setAnswer(func(w http.ResponseWriter) {
			arrived <- struct{}{}
			<-release
			w.WriteHeader(http.StatusOK)
		})
		ep, secret := r.endpoint(t, recv.URL)
		recv.setSecrets(t, secret)
		r.send(t, "m1", "a@example.org", "b@example.org")
		ctx, kill := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.d.Run(ctx) }()
		for range 2 {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatal("deliveries did not start")
			}
		}
		kill()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		close(release)
		firstIDs, _, _ := recv.snapshot()
		for _, d := range r.deliveries(t, ep) {
			if d.Status != store.DeliveryPending || d.Attempts != 0 {
				t.Fatalf("a killed attempt was recorded: %+v", d)
			}
		}
		recv.setAnswer(answerCode(http.StatusOK))
		fresh := NewDispatcher(r.cfg, r.deps)
		if err := fresh.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ids, _, _ := recv.snapshot(); len(ids) != 2 {
			t.Fatalf("leased deliveries taken before the lease lapsed: %d requests", len(ids))
		}
		r.clk.Advance(time.Minute)
		if err := fresh.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, got, _ := recv.snapshot()
		for _, id := range firstIDs {
			if got[id] == nil {
				t.Errorf("webhook-id %s not delivered after the kill", id)
			}
		}
		if s := statuses(r.deliveries(t, ep)); s[store.DeliveryDelivered] != 2 {
			t.Errorf("statuses %v", s)
		}
	})
}

// TestWebhookMetricsAtZero: every result of the deliveries counter, the
// histogram and the gauges are exported before the first delivery.
func TestWebhookMetricsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := NewWebhookMetrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
	}
	want := map[string]int{"mailgate_webhook_deliveries_total": 4, "mailgate_webhook_delivery_duration_seconds": 1,
		"mailgate_webhook_backlog": 1, "mailgate_webhook_endpoints_disabled": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series exported at start (-want +got):\n%s", diff)
	}
}

// TestWebhookTestEvent: a test delivery (no event) goes out as stored,
// signed like any other.
func TestWebhookTestEvent(t *testing.T) {
	r := newHookRig(t, testsvc.SQLiteURL(t))
	recv := newHookReceiver(t)
	ep, secret := r.endpoint(t, recv.URL)
	recv.setSecrets(t, secret)
	body := []byte(`{"type":"webhook.test","timestamp":"2026-12-01T08:00:00Z","data":{"webhook_id":"` + ep.ID + `"}}`)
	d, err := r.st.CreateTestDelivery(context.Background(), store.DefaultProjectID, ep.ID, body)
	if err != nil {
		t.Fatal(err)
	}
	r.runOnce(t)
	_, got, refused := recv.snapshot()
	if refused != 0 || string(got[d.ID]) != string(body) {
		t.Fatalf("receiver got %q (refused %d), want %s", got[d.ID], refused, body)
	}
}

// TestWebhookSecretNotOpening: with a master key the secrets were not
// sealed with, nothing is posted and the deliveries are deferred without
// counting, past the time that would exhaust them and disable the
// endpoint; with the right key they are delivered.
func TestWebhookSecretNotOpening(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		recv := newHookReceiver(t)
		ep, secret := r.endpoint(t, recv.URL)
		recv.setSecrets(t, secret)
		wrong, err := keyring.Generated()
		if err != nil {
			t.Fatal(err)
		}
		deps := r.deps
		deps.Opener = wrong
		deps.Metrics = NewWebhookMetrics()
		bad := NewDispatcher(r.cfg, deps)
		r.send(t, "m1", "ann@example.org")
		for range 60 { // six days in steps of the longest delay
			if err := bad.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.clk.Advance(3 * time.Hour)
		}
		if ids, _, _ := recv.snapshot(); len(ids) != 0 {
			t.Fatalf("posted %d requests with a secret that does not open", len(ids))
		}
		ds := r.deliveries(t, ep)
		if len(ds) != 1 || ds[0].Attempts != 0 || ds[0].Status != store.DeliveryPending || ds[0].NextAttemptAt == nil {
			t.Fatalf("deliveries %+v; want one pending, uncounted", ds)
		}
		if got := testutil.ToFloat64(deps.Metrics.deliveries.WithLabelValues("deferred")); got != 60 {
			t.Errorf("deferred counted %v, want 60", got)
		}
		if e, _ := r.st.WebhookEndpoint(context.Background(), store.DefaultProjectID, ep.ID); !e.Enabled || e.FailingSince != nil {
			t.Fatalf("endpoint %+v; want enabled, not failing", e)
		}
		r.runOnce(t)
		if ds := r.deliveries(t, ep); len(ds) != 1 || ds[0].Status != store.DeliveryDelivered {
			t.Fatalf("with the right key, deliveries %+v", ds)
		}
	})
}

// Statements the dispatcher runs, as dbfault.Faults.Ran matches them: a
// claim's read of the endpoint, and the read of the endpoints with
// deliveries due.
const (
	claimSQL = "WHERE enabled AND id = $1"
	dueSQL   = "EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = w.id"
)

// gatedPoster records the URL of each post and holds the post until gate
// lets it go, then posts through inner.
type gatedPoster struct {
	inner Poster
	gate  chan struct{}
	mu    sync.Mutex
	urls  []string
}

func (p *gatedPoster) Post(ctx context.Context, url string, secrets []string, id string, ts time.Time, body []byte) webhook.Result {
	p.mu.Lock()
	p.urls = append(p.urls, url)
	p.mu.Unlock()
	select {
	case <-p.gate:
	case <-ctx.Done():
		return webhook.Result{Err: ctx.Err()}
	}
	return p.inner.Post(ctx, url, secrets, id, ts, body)
}

func (p *gatedPoster) posted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.urls...)
}

// runGated runs a dispatcher of the rig with cfg's PerEndpoint and
// PollInterval posting through a gatedPoster, until the test ends.
func (r *hookRig) runGated(t *testing.T, perEndpoint int, poll time.Duration) *gatedPoster {
	t.Helper()
	p := &gatedPoster{inner: r.deps.Client, gate: make(chan struct{})}
	cfg := r.cfg
	cfg.PerEndpoint, cfg.PollInterval = perEndpoint, poll
	deps := r.deps
	deps.Client = p
	d := NewDispatcher(cfg, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
	return p
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookEndpointChangeNextAttempt: a change of an endpoint's URL, and
// its disabling, apply from the next attempt, though the dispatcher does
// not ask again which endpoints have deliveries due (one poll an hour):
// each claim reads the endpoint.
func TestWebhookEndpointChangeNextAttempt(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		ctx := context.Background()
		a, b := newHookReceiver(t), newHookReceiver(t)
		ep, _ := r.endpoint(t, a.URL+"/hooks")
		r.send(t, "m1", "ann@example.org", "bob@example.org", "cat@example.org")
		p := r.runGated(t, 1, time.Hour)
		waitFor(t, "the first post", func() bool { return len(p.posted()) == 1 })

		moved := b.URL + "/hooks"
		if _, err := r.st.UpdateWebhookEndpoint(ctx, store.DefaultProjectID, ep.ID, store.WebhookEndpointPatch{URL: &moved}); err != nil {
			t.Fatal(err)
		}
		p.gate <- struct{}{}
		waitFor(t, "the second post", func() bool { return len(p.posted()) == 2 })
		if got := p.posted(); got[0] != a.URL+"/hooks" || got[1] != moved {
			t.Fatalf("posted to %v; want the first to the old URL, the second to the new one", got)
		}

		off := false
		if _, err := r.st.UpdateWebhookEndpoint(ctx, store.DefaultProjectID, ep.ID, store.WebhookEndpointPatch{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		claims := r.faults.Ran(claimSQL)
		p.gate <- struct{}{}
		// The second attempt's end wakes a pass, whose claim finds the
		// endpoint disabled.
		waitFor(t, "the claim after the disabling", func() bool { return r.faults.Ran(claimSQL) > claims })
		waitFor(t, "the second outcome", func() bool {
			n := 0
			for _, d := range r.deliveries(t, ep) {
				if d.Status == store.DeliveryDelivered {
					n++
				}
			}
			return n == 2
		})
		if got := p.posted(); len(got) != 2 {
			t.Errorf("posted %d times; the endpoint was disabled after 2", len(got))
		}
		for _, d := range r.deliveries(t, ep) {
			if d.Status == store.DeliveryPending && d.Attempts != 0 {
				t.Errorf("pending delivery %s has %d attempts", d.ID, d.Attempts)
			}
		}
	})
}

// TestWebhookIdleAndBusyEndpointsCostNoClaims: the dispatcher claims only
// for an endpoint that has deliveries due and room for them: an endpoint
// with nothing due, or with PerEndpoint attempts in flight (a slow
// receiver), is polled by a read and never claimed for.
func TestWebhookIdleAndBusyEndpointsCostNoClaims(t *testing.T) {
	eachEngine(t, func(t *testing.T, r *hookRig) {
		recv := newHookReceiver(t)
		ep, _ := r.endpoint(t, recv.URL+"/hooks")
		p := r.runGated(t, 2, 5*time.Millisecond)
		waitFor(t, "five polls", func() bool { return r.faults.Ran(dueSQL) >= 5 })
		if n := r.faults.Ran(claimSQL); n != 0 {
			t.Fatalf("%d claims for an endpoint with nothing due", n)
		}

		r.send(t, "m1", "a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org")
		waitFor(t, "two attempts in flight", func() bool { return len(p.posted()) == 2 })
		claims, polls := r.faults.Ran(claimSQL), r.faults.Ran(dueSQL)
		waitFor(t, "five more polls", func() bool { return r.faults.Ran(dueSQL) >= polls+5 })
		if n := r.faults.Ran(claimSQL); n != claims {
			t.Fatalf("%d claims while the endpoint had no room", n-claims)
		}

		close(p.gate)
		waitFor(t, "every delivery", func() bool {
			n := 0
			for _, d := range r.deliveries(t, ep) {
				if d.Status == store.DeliveryDelivered {
					n++
				}
			}
			return n == 5
		})
	})
}
