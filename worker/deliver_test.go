package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/verp"
)

// rig is a delivery pipeline on real parts: a database, Redis for the
// limits, an in-process SMTP server as the upstream, a fake clock.
type rig struct {
	t     *testing.T
	st    *store.Store
	rdb   redis.UniversalClient
	sink  *smtptest.Server
	d     *Deliverer
	verp  *verp.Codec
	clock time.Time
	seq   int
}

type noKeys struct{}

// SigningKeys: every domain is registered and verified, without keys.
func (noKeys) SigningKeys(context.Context, string, string) (SenderKeys, error) {
	return SenderKeys{Registered: true, Status: store.DomainVerified}, nil
}

func newRig(t *testing.T, dbURL string, relayLimit []ratelimit.Limit, timeouts mta.Timeouts) *rig {
	t.Helper()
	return newRigOn(t, store.Config{URL: dbURL}, relayLimit, timeouts)
}

// newRigOn is newRig on a store opened with cfg (its clock is the rig's).
func newRigOn(t *testing.T, cfg store.Config, relayLimit []ratelimit.Limit, timeouts mta.Timeouts) *rig {
	t.Helper()
	ctx := context.Background()
	r := &rig{t: t, clock: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
	cfg.Now = func() time.Time { return r.clock }
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(t, 13))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	sink, err := smtptest.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	pool, err := mta.NewPool(mta.RelayConfig{Name: "sink", Host: sink.Host, Port: sink.Port, TLS: mta.TLSNone, MaxConns: 2}, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	policy := ratelimit.NewPolicy(ratelimit.PolicyConfig{Relay: map[string][]ratelimit.Limit{"sink": relayLimit},
		Now: func() time.Time { return r.clock }}, ratelimit.New(ratelimit.Config{Prefix: "t:" + t.Name() + ":"}, rdb))
	r.st, r.rdb, r.sink, r.verp = st, rdb, sink, verp.New(kr, "bounces.shop.example")
	r.d = NewDeliverer(DeliveryConfig{Now: func() time.Time { return r.clock }}, DeliveryDeps{
		Store: st, Relay: mta.NewRelays([]*mta.Pool{pool}), Limits: policy,
		ReturnPath: r.verp, Keys: noKeys{}, Signer: mta.NewSigner(mta.SignerConfig{}),
	})
	return r
}

// accept commits a message as the API would and returns its id.
func (r *rig) accept(to, cc, bcc []string) string {
	r.t.Helper()
	r.seq++
	id := fmt.Sprintf("01900000-0000-7000-8000-%012d", r.seq)
	payload, _ := json.Marshal(map[string]any{"from": "Shop <orders@shop.example>", "to": to, "cc": cc,
		"bcc": bcc, "subject": "Order " + id})
	m := store.NewMessage{ID: id, ProjectID: store.DefaultProjectID, KeyID: "key1", From: "Shop <orders@shop.example>",
		FromDomain: "shop.example", Subject: "Order", Payload: store.Payload{Request: payload, Text: "hello"}, CreatedAt: r.clock}
	kinds := []string{store.KindTo, store.KindCc, store.KindBcc}
	for i, list := range [][]string{to, cc, bcc} {
		for _, e := range list {
			m.Recipients = append(m.Recipients, store.NewRecipient{Email: e, Kind: kinds[i], Status: store.StatusQueued})
		}
	}
	if _, err := r.st.CreateMessages(context.Background(), []store.NewMessage{m}, nil); err != nil {
		r.t.Fatal(err)
	}
	return id
}

func (r *rig) message(id string) store.Message {
	r.t.Helper()
	m, err := r.st.GetMessage(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *rig) eventTypes(id string) []string {
	r.t.Helper()
	evs, err := r.st.MessageEvents(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func reply(code int, enh smtp.EnhancedCode, text string) smtptest.Action {
	return smtptest.Action{Reply: &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}}
}

func fastTimeouts() mta.Timeouts {
	return mta.Timeouts{Connect: 2 * time.Second, Greeting: 2 * time.Second, Mail: 2 * time.Second,
		Rcpt: 2 * time.Second, DataInit: 2 * time.Second, DataBlock: 2 * time.Second, DataTerm: 300 * time.Millisecond}
}

// TestDeliverOutcomes: each upstream answer ends in its exact status,
// events, suppression and retry decision.
func TestDeliverOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		act        smtptest.Action
		wantStatus string
		wantEvent  string
		wantCode   int
		wantRetry  bool
		suppressed bool
		flagged    bool
	}{
		{"accepted", smtptest.Action{}, store.StatusSent, store.EventSent, 250, false, false, false},
		{"421 busy", reply(421, smtp.EnhancedCode{4, 3, 2}, "try later"), store.StatusDeferred, store.EventDeferred, 421, true, false, false},
		{"451 rate", reply(451, smtp.EnhancedCode{4, 7, 1}, "rate limited"), store.StatusDeferred, store.EventDeferred, 451, true, false, false},
		{"550 unknown user", reply(550, smtp.EnhancedCode{5, 1, 1}, "no such user"), store.StatusFailed, store.EventFailed, 550, false, true, false},
		{"552 too big", reply(552, smtp.EnhancedCode{5, 3, 4}, "message too big"), store.StatusFailed, store.EventFailed, 552, false, false, false},
		{"drop after data", smtptest.Action{Drop: true}, store.StatusDeferred, store.EventDeferred, 0, true, false, true},
		{"stall after data", smtptest.Action{Stall: true}, store.StatusDeferred, store.EventDeferred, 0, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
			r.sink.SetDecide(func(string, string, []byte) smtptest.Action { return tt.act })
			id := r.accept([]string{"ann@example.org"}, nil, nil)
			err := r.d.Deliver(context.Background(), id, 0)
			if gotRetry := err != nil; gotRetry != tt.wantRetry {
				t.Fatalf("Deliver error %v, want retry %v", err, tt.wantRetry)
			}
			if err != nil && !IsFailure(err) {
				t.Fatalf("a relay failure must count as a failure: %v", err)
			}
			m := r.message(id)
			rc := m.Recipients[0]
			if rc.Status != tt.wantStatus || m.Status != tt.wantStatus {
				t.Fatalf("recipient %s message %s, want %s", rc.Status, m.Status, tt.wantStatus)
			}
			if tt.wantStatus == store.StatusSent && !strings.HasPrefix(rc.SMTPResponse, "250 ") || len(rc.SMTPResponse) < 5 {
				t.Fatalf("smtp_response %q does not carry the relay's reply", rc.SMTPResponse)
			}
			if code := 0; rc.SMTPCode != nil {
				code = *rc.SMTPCode
				if code != tt.wantCode {
					t.Fatalf("smtp_code %d, want %d", code, tt.wantCode)
				}
			} else if tt.wantCode != 0 {
				t.Fatalf("smtp_code missing, want %d", tt.wantCode)
			}
			if got := r.eventTypes(id); strings.Join(got, ",") != store.EventQueued+","+tt.wantEvent {
				t.Fatalf("events %v, want queued then %s", got, tt.wantEvent)
			}
			_, err = r.st.GetSuppression(context.Background(), store.DefaultProjectID, "ann@example.org")
			if (err == nil) != tt.suppressed {
				t.Fatalf("suppressed = %v, want %v", err == nil, tt.suppressed)
			}
			if m.PossiblyDuplicated != tt.flagged {
				t.Fatalf("possibly_duplicated %v, want %v", m.PossiblyDuplicated, tt.flagged)
			}
		})
	}
}

// TestDeliverRetryThenSentOnce: a deferred recipient is retried while the
// one that was accepted is never sent again.
func TestDeliverRetryThenSentOnce(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			r := newRig(t, url, nil, fastTimeouts())
			first := true
			r.sink.SetDecide(func(_, to string, _ []byte) smtptest.Action {
				if to == "bob@example.net" && first {
					first = false
					return reply(451, smtp.EnhancedCode{4, 3, 0}, "temporary")
				}
				return smtptest.Action{}
			})
			id := r.accept([]string{"ann@example.org", "bob@example.net"}, nil, nil)
			if err := r.d.Deliver(context.Background(), id, 0); !errors.Is(err, errDeferred) {
				t.Fatalf("first attempt: %v, want deferred", err)
			}
			if m := r.message(id); m.Status != store.StatusDeferred {
				t.Fatalf("message status %s after one deferral, want deferred", m.Status)
			}
			r.clock = r.clock.Add(time.Minute)
			if err := r.d.Deliver(context.Background(), id, 0); err != nil {
				t.Fatalf("second attempt: %v", err)
			}
			if m := r.message(id); m.Status != store.StatusSent {
				t.Fatalf("message status %s, want sent", m.Status)
			}
			count := map[string]int{}
			for _, msg := range r.sink.Messages() {
				count[msg.To]++
			}
			if count["ann@example.org"] != 1 || count["bob@example.net"] != 1 {
				t.Fatalf("sink received %v, want each recipient once", count)
			}
			if err := r.d.Deliver(context.Background(), id, 0); err != nil || len(r.sink.Messages()) != 2 {
				t.Fatalf("a third run of the task sent again: %v, %d messages", err, len(r.sink.Messages()))
			}
		})
	}
}

// TestDeliverEnvelopeAndBcc: every recipient gets its own VERP envelope
// that parses back to it, and Bcc appears in no header.
func TestDeliverEnvelopeAndBcc(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	id := r.accept([]string{"ann@example.org"}, []string{"cc@example.org"}, []string{"secret@example.com"})
	if err := r.d.Deliver(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
	msgs := r.sink.Messages()
	if len(msgs) != 3 {
		t.Fatalf("sink got %d transactions, want 3", len(msgs))
	}
	for _, m := range msgs {
		gotID, pos, err := r.verp.Parse(m.From)
		if err != nil || gotID != id {
			t.Fatalf("envelope %s does not parse to the message: %v", m.From, err)
		}
		want := []string{"ann@example.org", "cc@example.org", "secret@example.com"}[pos]
		if m.To != want {
			t.Fatalf("envelope of position %d went to %s, want %s", pos, m.To, want)
		}
		if bytes.Contains(bytes.ToLower(m.Data), []byte("secret@example.com")) {
			t.Fatalf("the Bcc address appears in the delivered message to %s", m.To)
		}
		if !bytes.Contains(bytes.ToLower(m.Data), []byte("x-mailgate-id: "+id)) {
			t.Fatalf("X-Mailgate-ID missing")
		}
	}
}

// TestDeliverSuppressedAfterAcceptance: an address suppressed between
// acceptance and sending is not sent and becomes suppressed.
func TestDeliverSuppressedAfterAcceptance(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	id := r.accept([]string{"ann@example.org", "bob@example.net"}, nil, nil)
	if _, err := r.st.UpsertSuppression(context.Background(), store.Suppression{ProjectID: store.DefaultProjectID,
		Email: "BOB@example.net", Reason: store.ReasonComplaint}); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Deliver(context.Background(), id, 0); err != nil {
		t.Fatal(err)
	}
	if msgs := r.sink.Messages(); len(msgs) != 1 || msgs[0].To != "ann@example.org" {
		t.Fatalf("sink got %v, want only ann", msgs)
	}
	m := r.message(id)
	if m.Recipients[1].Status != store.StatusSuppressed || m.Status != store.StatusPartial {
		t.Fatalf("bob %s, message %s; want suppressed, partial", m.Recipients[1].Status, m.Status)
	}
	evs, err := r.st.MessageEvents(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		t.Fatal(err)
	}
	var suppressed []string
	for _, e := range evs {
		if e.Type == store.EventSuppressed {
			suppressed = append(suppressed, e.Recipient)
		}
	}
	if !slices.Equal(suppressed, []string{"bob@example.net"}) {
		t.Fatalf("message.suppressed events for %v, want bob's alone (events %v)", suppressed, r.eventTypes(id))
	}
}

// TestDeliverExpiresAfterMaxAge walks the retry schedule on a fake clock:
// 1 min doubling to 1 h, then after 72 hours the recipient fails with
// reason expired and the task ends.
func TestDeliverExpiresAfterMaxAge(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	r.sink.SetDecide(func(string, string, []byte) smtptest.Action {
		return reply(451, smtp.EnhancedCode{4, 4, 1}, "no answer from host")
	})
	id := r.accept([]string{"ann@example.org"}, nil, nil)
	var delays []time.Duration
	start := r.clock
	for n := 0; ; n++ {
		err := r.d.Deliver(context.Background(), id, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, errDeferred) {
			t.Fatalf("attempt %d: %v", n, err)
		}
		d := r.d.RetryDelay(n, err, asynq.NewTask(queue.TypeSend, nil))
		delays = append(delays, d)
		r.clock = r.clock.Add(d)
		if n > 200 {
			t.Fatal("never expired")
		}
	}
	wantFirst := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	for i, w := range wantFirst {
		if delays[i] != w {
			t.Fatalf("delay %d = %v, want %v (schedule %v)", i, delays[i], w, delays[:len(wantFirst)])
		}
	}
	if age := r.clock.Sub(start); age <= 72*time.Hour || age > 73*time.Hour {
		t.Fatalf("expired after %v, want just past 72h", age)
	}
	m := r.message(id)
	if m.Recipients[0].Status != store.StatusFailed {
		t.Fatalf("status %s, want failed", m.Recipients[0].Status)
	}
	evs, _ := r.st.MessageEvents(context.Background(), store.DefaultProjectID, id)
	last := evs[len(evs)-1]
	if last.Type != store.EventFailed || !strings.Contains(string(last.Data), `"reason":"expired"`) {
		t.Fatalf("last event %s %s, want message.failed with reason expired", last.Type, last.Data)
	}
}

// TestDeliverHeldBackByRateLimit: past the relay limit the remaining
// recipients go back to queued and the task waits without a failure.
func TestDeliverHeldBackByRateLimit(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), []ratelimit.Limit{{Events: 1, Period: time.Minute}}, fastTimeouts())
	id := r.accept([]string{"a@example.org", "b@example.org", "c@example.org"}, nil, nil)
	err := r.d.Deliver(context.Background(), id, 0)
	if err == nil || IsFailure(err) {
		t.Fatalf("Deliver = %v, want a hold that is not a failure", err)
	}
	if d := r.d.RetryDelay(0, err, nil); d <= 0 || d > time.Minute {
		t.Fatalf("retry after %v, want within the limit's minute", d)
	}
	m := r.message(id)
	got := []string{m.Recipients[0].Status, m.Recipients[1].Status, m.Recipients[2].Status}
	if strings.Join(got, ",") != "sent,queued,queued" {
		t.Fatalf("statuses %v, want sent,queued,queued", got)
	}
	if n := len(r.sink.Messages()); n != 1 {
		t.Fatalf("sink got %d, want 1", n)
	}
}

// TestDeliverWaitsOutShortHolds: a hold of at most HoldWait is waited out
// in the task and the send goes on; a longer one reschedules the task
// without waiting. (The limits live in Redis, on its clock: the waits are
// real, a tenth of a second each.)
func TestDeliverWaitsOutShortHolds(t *testing.T) {
	r := newRig(t, testsvc.SQLiteURL(t), []ratelimit.Limit{{Events: 10, Period: time.Second, Burst: 1}}, fastTimeouts())
	var slept time.Duration
	r.d.cfg.Sleep = func(ctx context.Context, d time.Duration) error {
		slept += d
		return sleep(ctx, d)
	}
	id := r.accept([]string{"a@example.org", "b@example.org", "c@example.org"}, nil, nil)
	start := time.Now()
	if err := r.d.Deliver(context.Background(), id, 0); err != nil {
		t.Fatalf("Deliver = %v, want every recipient sent after short waits", err)
	}
	took := time.Since(start)
	if n := len(r.sink.Messages()); n != 3 || r.message(id).Status != store.StatusSent {
		t.Fatalf("sink got %d, message %s; want 3, sent", n, r.message(id).Status)
	}
	// Three sends at 10/s span at least 0.2 s; how much of it is waiting
	// rather than sending depends on how fast the sends themselves are.
	if slept <= 0 || slept > time.Second || took < 190*time.Millisecond {
		t.Fatalf("waited %v in a Deliver of %v, want some waiting, at most 1 s, and at least 0.2 s in all (10/s, three sends)",
			slept, took)
	}

	r.d.cfg.HoldWait = 10 * time.Millisecond
	slept = 0
	id = r.accept([]string{"d@example.org", "e@example.org"}, nil, nil)
	err := r.d.Deliver(context.Background(), id, 0)
	var held *heldBack
	if !errors.As(err, &held) || slept != 0 {
		t.Fatalf("Deliver = %v after waiting %v, want a hold at once (0.1 s > HoldWait)", err, slept)
	}
}
