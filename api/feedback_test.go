package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/feedback/feedbacktest"
	"github.com/mailgate/mailgate/inbound"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// fbEnv is a test server receiving provider feedback: the SNS certificate
// and subscription URLs are served by the test, never fetched.
type fbEnv struct {
	*testEnv
	kr        *keyring.Keyring
	sns       *feedbacktest.SNS
	sendgrid  *feedbacktest.SendGrid
	key       string
	confirmed atomic.Int64
}

func newFBEnv(t *testing.T, engine string, opts ...envOption) *fbEnv {
	t.Helper()
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	f := &fbEnv{kr: kr}
	if f.sendgrid, err = feedbacktest.NewSendGrid(); err != nil {
		t.Fatal(err)
	}
	f.testEnv = newEnv(t, engine, func(c *Config, d *Deps) {
		if f.sns, err = feedbacktest.NewSNS(c.Now()); err != nil {
			t.Fatal(err)
		}
		f.feedbackDeps(c, d, apiTestTokens(t))
		for _, o := range opts {
			o(c, d)
		}
	})
	f.key = f.key0(t)
	return f
}

// feedbackDeps sets what receiving feedback takes, used tokens in tokens.
func (f *fbEnv) feedbackDeps(c *Config, d *Deps, tokens feedback.TokenClaimer) {
	d.Keyring = f.kr
	d.Feedback = inbound.NewFeedback(inbound.FeedbackConfig{Now: c.Now}, d.Store, nil)
	d.FeedbackTokens = tokens
	d.FeedbackRoots = f.sns.Roots()
	d.FeedbackFetch = func(ctx context.Context, rawURL string) ([]byte, error) {
		if strings.Contains(rawURL, "Action=ConfirmSubscription") {
			f.confirmed.Add(1)
			return []byte("<ConfirmSubscriptionResponse/>"), nil
		}
		return f.sns.Fetch(ctx, rawURL)
	}
}

// apiTestTokens remembers used tokens in this package's Redis database,
// through a client of its own.
func apiTestTokens(t *testing.T) feedback.TokenClaimer {
	t.Helper()
	return feedback.NewRedisTokens(redisAt(t, testsvc.RedisURLDB(t, apiTestRedisDB)), "")
}

// redisAt is a client of the Redis at url that does not retry.
func redisAt(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// replica is another API server on f's database, as a second replica is:
// its own metrics, its own Redis clients, used tokens in tokens.
func (f *fbEnv) replica(t *testing.T, tokens feedback.TokenClaimer) *testEnv {
	t.Helper()
	cfg := Config{AllowedSenderDomains: []string{"shop.example"}, Now: f.clock.Now}
	deps := Deps{Store: f.store, Queue: f.queue, Limiter: ratelimit.New(ratelimit.Config{}, f.rdb),
		Registry: prometheus.NewRegistry()}
	f.feedbackDeps(&cfg, &deps, tokens)
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	r := *f.testEnv
	r.srv, r.handler = srv, srv.Handler()
	return &r
}

func (f *fbEnv) key0(t *testing.T) string {
	t.Helper()
	return f.testEnv.key(store.DefaultProjectID, apikey.ScopeWebhooks)
}

// sentMessage stores a message to rcpts and records it sent to each.
func (f *fbEnv) sentMessage(t *testing.T, rcpts ...string) string {
	t.Helper()
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()
	m := store.NewMessage{ID: id, ProjectID: store.DefaultProjectID, KeyID: "k1", From: "news@shop.example",
		FromDomain: "shop.example", Subject: "News", Tags: []string{}, Metadata: map[string]string{},
		Payload: store.Payload{Request: []byte(`{}`)}, CreatedAt: f.clock.Now()}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, store.NewRecipient{Email: r, Kind: store.KindTo, Status: store.StatusQueued})
	}
	if _, err := f.store.CreateMessages(ctx, []store.NewMessage{m}, nil); err != nil {
		t.Fatal(err)
	}
	_, start, err := f.store.StartDelivery(ctx, id, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var outs []store.Outcome
	for _, r := range start.Send {
		outs = append(outs, store.Outcome{Position: r.Position, Email: r.Email, Status: store.StatusSent,
			SMTPCode: 250, Event: store.EventSent})
	}
	if err := f.store.RecordOutcomes(ctx, id, outs, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return id
}

// statuses maps each recipient of message id to its status.
func (f *fbEnv) statuses(t *testing.T, id string) map[string]string {
	t.Helper()
	m, err := f.store.GetMessage(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range m.Recipients {
		out[r.Email] = r.Status
	}
	return out
}

// configure PUTs the provider's settings and returns the receiving path.
func (f *fbEnv) configure(t *testing.T, provider string, body any) string {
	t.Helper()
	r := f.do(t, request{Method: http.MethodPut, Path: "/v1/feedback/" + provider, Token: f.key, Body: body})
	wantCode(t, r, http.StatusOK)
	var v struct {
		Path      string `json:"path"`
		HasSecret bool   `json:"has_secret"`
	}
	r.decode(t, &v)
	if !strings.HasPrefix(v.Path, "/v1/feedback/"+provider+"/") {
		t.Fatalf("path %q", v.Path)
	}
	return v.Path
}

// body reads a provider notification of package feedback's testdata
// about message id.
func body(t *testing.T, name, id string) []byte {
	t.Helper()
	b, err := os.ReadFile("../feedback/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(string(b), "MSGID", id))
}

func (f *fbEnv) refused(t *testing.T, provider, reason string) float64 {
	t.Helper()
	return refusedAt(f.testEnv, provider, reason)
}

// refusedAt is mailgate_feedback_refused_total{provider,reason} of e's server.
func refusedAt(e *testEnv, provider, reason string) float64 {
	return testutil.ToFloat64(e.srv.metrics.feedbackRefused.WithLabelValues(provider, reason))
}

// wantApplied checks a 200 answer and how many events it applied.
func wantApplied(t *testing.T, r response, applied int) {
	t.Helper()
	wantCode(t, r, http.StatusOK)
	var v feedbackResult
	r.decode(t, &v)
	if v.Applied != applied {
		t.Errorf("applied %d, want %d (%+v)", v.Applied, applied, v)
	}
}

func wantStatuses(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: status %q, want %q", k, got[k], w)
		}
	}
}

var rcpts = []string{"ok@example.net", "gone@example.net", "angry@example.net"}

func TestFeedbackSES(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		path := f.configure(t, "ses", map[string]any{"topic_arn": feedbacktest.TopicARN})
		id := f.sentMessage(t, rcpts...)
		now := f.clock.Now()
		post := func(b []byte) response { return f.do(t, request{Method: http.MethodPost, Path: path, Body: b}) }

		wantApplied(t, post(f.sns.Confirmation("c-1", "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t", now)), 0)
		if f.confirmed.Load() != 1 {
			t.Errorf("subscription confirmed %d times", f.confirmed.Load())
		}
		forged := strings.Replace(string(f.sns.Notification("n-0", string(body(t, "ses_bounce.json", id)), now, "2")),
			"gone@example.net", "ok@example.net", 1)
		wantProblem(t, post([]byte(forged)), http.StatusForbidden, "feedback-refused")
		wantProblem(t, post(f.sns.Notification("n-old", string(body(t, "ses_bounce.json", id)), now.Add(-2*time.Hour), "1")),
			http.StatusForbidden, "feedback-refused")
		wantProblem(t, post([]byte(`{"Type":"Notification","TopicArn":"`+feedbacktest.TopicARN+`"}`)),
			http.StatusUnauthorized, "feedback-unauthenticated")
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "sent"})
		if f.refused(t, "ses", "forged") != 1 || f.refused(t, "ses", "stale") != 1 || f.refused(t, "ses", "unauthenticated") != 1 {
			t.Errorf("refused metrics: forged %v stale %v unauthenticated %v", f.refused(t, "ses", "forged"),
				f.refused(t, "ses", "stale"), f.refused(t, "ses", "unauthenticated"))
		}

		wantApplied(t, post(f.sns.Notification("n-1", string(body(t, "ses_bounce.json", id)), now, "1")), 1)
		wantApplied(t, post(f.sns.Notification("n-2", string(body(t, "ses_complaint.json", id)), now, "2")), 1)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "bounced",
			"angry@example.net": "complained"})
		// SNS redelivers a message it is unsure about: applied once.
		wantApplied(t, post(f.sns.Notification("n-1", string(body(t, "ses_bounce.json", id)), now, "1")), 0)

		r := f.do(t, request{Method: http.MethodPost, Path: "/v1/feedback/ses/not-a-token", Body: []byte(`{}`)})
		wantProblem(t, r, http.StatusNotFound, "not-found")
	})
}

func TestFeedbackSendGrid(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		path := f.configure(t, "sendgrid", map[string]any{"public_key": f.sendgrid.PublicKey})
		id := f.sentMessage(t, rcpts...)
		now := f.clock.Now()
		post := func(b []byte, sig, ts string) response {
			return f.do(t, request{Method: http.MethodPost, Path: path, Body: b,
				Header: map[string]string{"X-Twilio-Email-Event-Webhook-Signature": sig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}})
		}
		b := body(t, "sendgrid_events.json", id)
		sig, ts := f.sendgrid.Sign(b, now)
		forged := []byte(strings.Replace(string(b), "gone@example.net", "ok@example.net", 1))
		wantProblem(t, post(forged, sig, ts), http.StatusForbidden, "feedback-refused")
		oldSig, oldTS := f.sendgrid.Sign(b, now.Add(-2*time.Hour))
		wantProblem(t, post(b, oldSig, oldTS), http.StatusForbidden, "feedback-refused")
		wantProblem(t, post(b, "", ts), http.StatusUnauthorized, "feedback-unauthenticated")
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "sent"})

		// hard bounce of gone@, complaint of angry@, delivery of ok@ (busy@ is not a recipient).
		wantApplied(t, post(b, sig, ts), 3)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "bounced",
			"angry@example.net": "complained"})
		if f.refused(t, "sendgrid", "forged") != 1 || f.refused(t, "sendgrid", "stale") != 1 {
			t.Errorf("refused metrics")
		}
	})
}

func TestFeedbackMailgun(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		const key = "key-0123456789abcdef0123456789abcdef"
		path := f.configure(t, "mailgun", map[string]any{"signing_key": key})
		id := f.sentMessage(t, rcpts...)
		now := f.clock.Now()
		post := func(b []byte) response { return f.do(t, request{Method: http.MethodPost, Path: path, Body: b}) }
		failed := body(t, "mailgun_failed.json", id)
		wantProblem(t, post(feedbacktest.Mailgun(failed, "key-wrong", "tok-a", now)), http.StatusForbidden, "feedback-refused")
		wantProblem(t, post(feedbacktest.Mailgun(failed, key, "tok-b", now.Add(-2*time.Hour))), http.StatusForbidden, "feedback-refused")
		wantStatuses(t, f.statuses(t, id), map[string]string{"gone@example.net": "sent"})

		wantApplied(t, post(feedbacktest.Mailgun(failed, key, "tok-c", now)), 1)
		// The same signed body again: the token was used.
		wantProblem(t, post(feedbacktest.Mailgun(failed, key, "tok-c", now)), http.StatusForbidden, "feedback-refused")
		wantApplied(t, post(feedbacktest.Mailgun(body(t, "mailgun_complained.json", id), key, "tok-d", now)), 1)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "bounced",
			"angry@example.net": "complained"})
		if f.refused(t, "mailgun", "forged") != 1 || f.refused(t, "mailgun", "stale") != 1 || f.refused(t, "mailgun", "replayed") != 1 {
			t.Errorf("refused metrics")
		}
		r := f.get(t, "/v1/feedback/mailgun", f.key)
		wantCode(t, r, http.StatusOK)
		if strings.Contains(string(r.Body), key) || !strings.Contains(string(r.Body), `"has_secret":true`) {
			t.Errorf("GET shows %s", r.Body)
		}
	})
}

func TestFeedbackPostmark(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		path := f.configure(t, "postmark", map[string]any{"username": "mailgate", "password": "correct-horse-battery"})
		id := f.sentMessage(t, rcpts...)
		post := func(b []byte, user, pass string) response {
			h := map[string]string{}
			if user != "" {
				h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
			}
			return f.do(t, request{Method: http.MethodPost, Path: path, Body: b, Header: h})
		}
		bounce := body(t, "postmark_bounce.json", id)
		r := post(bounce, "", "")
		wantProblem(t, r, http.StatusUnauthorized, "feedback-unauthenticated")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
		}
		wantProblem(t, post(bounce, "mailgate", "wrong-password-here"), http.StatusForbidden, "feedback-refused")
		wantStatuses(t, f.statuses(t, id), map[string]string{"gone@example.net": "sent"})
		wantApplied(t, post(bounce, "mailgate", "correct-horse-battery"), 1)
		wantApplied(t, post(bounce, "mailgate", "correct-horse-battery"), 0) // same bounce ID: once
		wantApplied(t, post(body(t, "postmark_complaint.json", id), "mailgate", "correct-horse-battery"), 1)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "bounced",
			"angry@example.net": "complained"})
	})
}

func TestFeedbackConfigValidation(t *testing.T) {
	f := newFBEnv(t, store.DialectSQLite)
	put := func(provider string, b any) response {
		return f.do(t, request{Method: http.MethodPut, Path: "/v1/feedback/" + provider, Token: f.key, Body: b})
	}
	wantProblem(t, put("ses", map[string]any{}), http.StatusUnprocessableEntity, "validation", "/topic_arn")
	wantProblem(t, put("ses", map[string]any{"topic_arn": feedbacktest.TopicARN, "password": "x"}),
		http.StatusUnprocessableEntity, "validation", "/password")
	wantProblem(t, put("sendgrid", map[string]any{"public_key": "bm90IGEga2V5"}), http.StatusUnprocessableEntity,
		"validation", "/public_key")
	wantProblem(t, put("postmark", map[string]any{"username": "u", "password": "short"}), http.StatusUnprocessableEntity,
		"validation", "/password")
	wantProblem(t, put("nosuch", map[string]any{}), http.StatusUnprocessableEntity, "validation", "path:provider")
	wantCode(t, f.do(t, request{Method: http.MethodPut, Path: "/v1/feedback/ses", Token: f.sender,
		Body: map[string]any{"topic_arn": feedbacktest.TopicARN}}), http.StatusForbidden)
	first := f.configure(t, "ses", map[string]any{"topic_arn": feedbacktest.TopicARN})
	again := f.configure(t, "ses", map[string]any{"topic_arn": "arn:aws:sns:us-east-1:1:other"})
	if first != again {
		t.Errorf("path changed from %s to %s", first, again)
	}
	wantCode(t, f.do(t, request{Method: http.MethodDelete, Path: "/v1/feedback/ses", Token: f.key}), http.StatusNoContent)
	wantCode(t, f.get(t, "/v1/feedback/ses", f.key), http.StatusNotFound)
	wantCode(t, f.do(t, request{Method: http.MethodPost, Path: first, Body: []byte(`{}`)}), http.StatusNotFound)
}

// TestFeedbackRateLimit: the receiving route is limited per endpoint,
// unsigned requests included.
func TestFeedbackRateLimit(t *testing.T) {
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, store.DialectSQLite, func(c *Config, d *Deps) {
		c.RateLimit, d.Keyring = 1, kr
		// Unsigned requests are refused before anything is applied or a
		// token claimed: an applier that always fails and a token store
		// that cannot answer are never reached.
		d.Feedback = &failingApplier{fail: math.MaxInt}
		d.FeedbackTokens = feedback.NewRedisTokens(redisAt(t, "redis://"+closedAddr(t)+"/0"), "")
	})
	r := e.do(t, request{Method: http.MethodPut, Path: "/v1/feedback/postmark",
		Token: e.key(store.DefaultProjectID, apikey.ScopeWebhooks),
		Body:  map[string]any{"username": "u", "password": "0123456789abcdef"}})
	wantCode(t, r, http.StatusOK)
	var v struct {
		Path string `json:"path"`
	}
	r.decode(t, &v)
	codes := map[int]int{}
	for range 5 {
		codes[e.do(t, request{Method: http.MethodPost, Path: v.Path, Body: []byte(`{}`)}).Code]++
	}
	if codes[http.StatusTooManyRequests] == 0 || codes[http.StatusUnauthorized] == 0 {
		t.Errorf("answers %v, want 401s then 429s", codes)
	}
}

// TestFeedbackMailgunReplicas: two API servers on one database and one
// Redis share Mailgun's used tokens. A notification taken at one is
// refused as replayed at the other and counted there; while Redis cannot
// answer, a notification is a 503 with Retry-After and nothing is taken
// unchecked; after Redis restarted empty, a replay within the freshness
// window passes the token check but applies nothing (the events are
// recorded once per project and event id), and one outside it is stale.
func TestFeedbackMailgunReplicas(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		const key = "key-0123456789abcdef0123456789abcdef"
		path := f.configure(t, "mailgun", map[string]any{"signing_key": key})
		id := f.sentMessage(t, rcpts...)
		rd := testsvc.StartRedis(t)
		a := f.replica(t, feedback.NewRedisTokens(redisAt(t, rd.URL()), ""))
		b := f.replica(t, feedback.NewRedisTokens(redisAt(t, rd.URL()), ""))
		post := func(e *testEnv, body []byte) response {
			return e.do(t, request{Method: http.MethodPost, Path: path, Body: body})
		}
		now := f.clock.Now()
		signed := feedbacktest.Mailgun(body(t, "mailgun_failed.json", id), key, "tok-replicas", now)

		wantApplied(t, post(a, signed), 1)
		p := wantProblem(t, post(b, signed), http.StatusForbidden, "feedback-refused")
		if !strings.Contains(p.Detail, "replayed") {
			t.Errorf("detail %q", p.Detail)
		}
		if got := refusedAt(b, "mailgun", "replayed"); got != 1 {
			t.Errorf("replica b counted %v replays, want 1", got)
		}
		if got := refusedAt(a, "mailgun", "replayed"); got != 0 {
			t.Errorf("replica a counted %v replays, want 0", got)
		}
		wantApplied(t, post(a, feedbacktest.Mailgun(body(t, "mailgun_complained.json", id), key, "tok-2", now)), 1)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "bounced",
			"angry@example.net": "complained"})

		down := f.replica(t, feedback.NewRedisTokens(redisAt(t, "redis://"+closedAddr(t)+"/0"), ""))
		r := post(down, feedbacktest.Mailgun(body(t, "mailgun_failed.json", id), key, "tok-down", now))
		wantUnavailable(t, r)
		if strings.Contains(string(r.Body), key) {
			t.Errorf("answer shows the signing key: %s", r.Body)
		}

		rd.Restart()
		f.clock.Advance(30 * time.Minute)
		wantApplied(t, post(b, signed), 0)
		f.clock.Advance(31 * time.Minute)
		wantProblem(t, post(a, signed), http.StatusForbidden, "feedback-refused")
		if got := refusedAt(a, "mailgun", "stale"); got != 1 {
			t.Errorf("stale replays %v, want 1", got)
		}
		evs, err := f.store.MessageEvents(context.Background(), store.DefaultProjectID, id)
		if err != nil {
			t.Fatal(err)
		}
		bounced := 0
		for _, e := range evs {
			if e.Type == store.EventBounced {
				bounced++
			}
		}
		if bounced != 1 {
			t.Errorf("%d bounce events, want 1", bounced)
		}
	})
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestFeedbackOtherProject: a project's feedback endpoint can touch only
// its own messages. Another project, whose credentials it chose itself,
// posts notifications naming this project's message (by X-Mailgate-ID and
// Message-ID) with event ids this project's provider will use: nothing of
// this project changes, and its own notifications with those ids are
// still applied.
func TestFeedbackOtherProject(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		id := f.sentMessage(t, rcpts...)
		ours := f.configure(t, "postmark", map[string]any{"username": "ours", "password": "ours-password-0123"})
		oursSG := f.configure(t, "sendgrid", map[string]any{"public_key": f.sendgrid.PublicKey})

		other := f.project("other")
		otherKey := f.testEnv.key(other, apikey.ScopeWebhooks)
		put := func(provider string, b any) string {
			r := f.do(t, request{Method: http.MethodPut, Path: "/v1/feedback/" + provider, Token: otherKey, Body: b})
			wantCode(t, r, http.StatusOK)
			var v struct {
				Path string `json:"path"`
			}
			r.decode(t, &v)
			return v.Path
		}
		theirs := put("postmark", map[string]any{"username": "evil", "password": "evil-password-0123"})
		theirSG, err := feedbacktest.NewSendGrid()
		if err != nil {
			t.Fatal(err)
		}
		theirsSG := put("sendgrid", map[string]any{"public_key": theirSG.PublicKey})
		basic := func(user, pass string) map[string]string {
			return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
		}
		sgPost := func(path string, sg *feedbacktest.SendGrid, b []byte) response {
			sig, ts := sg.Sign(b, f.clock.Now())
			return f.do(t, request{Method: http.MethodPost, Path: path, Body: b,
				Header: map[string]string{"X-Twilio-Email-Event-Webhook-Signature": sig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}})
		}

		wantApplied(t, f.do(t, request{Method: http.MethodPost, Path: theirs, Body: body(t, "postmark_bounce.json", id),
			Header: basic("evil", "evil-password-0123")}), 0)
		wantApplied(t, sgPost(theirsSG, theirSG, body(t, "sendgrid_events.json", id)), 0)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "sent",
			"angry@example.net": "sent"})
		evs, err := f.store.MessageEvents(context.Background(), store.DefaultProjectID, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == store.EventBounced || e.Type == store.EventComplained {
				t.Errorf("event %s %s from another project's endpoint", e.Type, e.Recipient)
			}
		}
		for _, rcpt := range rcpts {
			if _, err := f.store.GetSuppression(context.Background(), store.DefaultProjectID, rcpt); err == nil {
				t.Errorf("%s suppressed by another project's endpoint", rcpt)
			}
		}

		wantApplied(t, f.do(t, request{Method: http.MethodPost, Path: ours, Body: body(t, "postmark_bounce.json", id),
			Header: basic("ours", "ours-password-0123")}), 1)
		wantCode(t, sgPost(oursSG, f.sendgrid, body(t, "sendgrid_events.json", id)), http.StatusOK)
		wantStatuses(t, f.statuses(t, id), map[string]string{"ok@example.net": "sent", "gone@example.net": "bounced",
			"angry@example.net": "complained"})
	})
}

// TestFeedbackBounceReasons: each provider's bounces, end to end from its
// documented notification to the event and the suppression, are
// classified by the rules of a mailbox bounce (a user-unknown one as
// userunknown, a mailbox-full one as mailboxfull), hard or soft by the
// provider's own verdict, with a rule naming both.
func TestFeedbackBounceReasons(t *testing.T) {
	type bounceEvent struct{ Type, Reason, Status, Rule string }
	const mgKey = "key-0123456789abcdef0123456789abcdef"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("mailgate:correct-horse-battery"))
	for _, tc := range []struct {
		provider string
		settings map[string]any
		files    []string
		want     map[string]bounceEvent
	}{
		{"ses", map[string]any{"topic_arn": feedbacktest.TopicARN}, []string{"ses_bounce.json", "ses_bounce_mailboxfull.json"},
			map[string]bounceEvent{
				"gone@example.net": {"hard", "userunknown", "5.1.1", "provider:ses:permanent/status:5.1.1"},
				"full@example.net": {"soft", "mailboxfull", "5.2.2", "provider:ses:temporary/status:5.2.2"}}},
		{"sendgrid", nil, []string{"sendgrid_bounces.json"}, map[string]bounceEvent{
			"gone@example.net": {"hard", "userunknown", "5.1.1", "provider:sendgrid:permanent/status:5.1.1"},
			"full@example.net": {"soft", "mailboxfull", "4.2.2", "provider:sendgrid:temporary/status:4.2.2"}}},
		// Mailgun's temporary failure is a delay (Mailgun retries): no
		// bounce, full@ stays sent.
		{"mailgun", map[string]any{"signing_key": mgKey}, []string{"mailgun_failed.json", "mailgun_failed_temporary.json"},
			map[string]bounceEvent{
				"gone@example.net": {"hard", "userunknown", "5.1.1", "provider:mailgun:permanent/status:5.1.1"}}},
		{"postmark", map[string]any{"username": "mailgate", "password": "correct-horse-battery"},
			[]string{"postmark_bounce.json", "postmark_softbounce.json", "postmark_autoresponder.json"},
			map[string]bounceEvent{
				"gone@example.net": {"hard", "userunknown", "5.1.1", "provider:postmark:permanent/status:5.1.1"},
				"full@example.net": {"soft", "mailboxfull", "5.2.2", "provider:postmark:temporary/status:5.2.2"}}},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			engines(t, func(t *testing.T, engine string) {
				f := newFBEnv(t, engine)
				if tc.provider == "sendgrid" {
					tc.settings = map[string]any{"public_key": f.sendgrid.PublicKey}
				}
				path := f.configure(t, tc.provider, tc.settings)
				id := f.sentMessage(t, "ok@example.net", "gone@example.net", "full@example.net")
				now := f.clock.Now()
				for i, file := range tc.files {
					b := body(t, file, id)
					rq := request{Method: http.MethodPost, Path: path, Header: map[string]string{}}
					switch tc.provider {
					case "ses":
						rq.Body = f.sns.Notification("sns-"+file, string(b), now, "2")
					case "sendgrid":
						sig, ts := f.sendgrid.Sign(b, now)
						rq.Body = b
						rq.Header["X-Twilio-Email-Event-Webhook-Signature"], rq.Header["X-Twilio-Email-Event-Webhook-Timestamp"] = sig, ts
					case "mailgun":
						rq.Body = feedbacktest.Mailgun(b, mgKey, "tok-"+strconv.Itoa(i), now)
					case "postmark":
						rq.Body, rq.Header["Authorization"] = b, basic
					}
					wantCode(t, f.do(t, rq), http.StatusOK)
				}
				evs, err := f.store.MessageEvents(context.Background(), store.DefaultProjectID, id)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bounceEvent{}
				for _, e := range evs {
					if e.Type == store.EventBounced {
						var d struct{ Type, Reason, Status, Rule string }
						if err := json.Unmarshal(e.Data, &d); err != nil {
							t.Fatal(err)
						}
						got[e.Recipient] = bounceEvent(d)
					} else if e.Recipient == "ok@example.net" && e.Type != store.EventQueued && e.Type != store.EventSent {
						t.Errorf("event %s for ok@ (an auto-reply is not a bounce)", e.Type)
					}
				}
				if d := cmp.Diff(tc.want, got); d != "" {
					t.Errorf("bounce events (-want +got):\n%s", d)
				}
				if _, bounced := tc.want["full@example.net"]; !bounced {
					wantStatuses(t, f.statuses(t, id), map[string]string{"full@example.net": "sent"})
					if n, err := f.store.SoftBounceCount(context.Background(), store.DefaultProjectID, "full@example.net"); err != nil || n != 0 {
						t.Errorf("full@ soft bounces %d, %v after a delay", n, err)
					}
				}
				for rcpt, w := range tc.want {
					sp, err := f.store.GetSuppression(context.Background(), store.DefaultProjectID, rcpt)
					switch {
					case w.Type == "hard" && (err != nil || sp.Reason != store.ReasonHardBounce):
						t.Errorf("%s: suppression %+v, %v; want hard_bounce", rcpt, sp, err)
					case w.Type == "soft" && !errors.Is(err, store.ErrNotFound):
						t.Errorf("%s: suppressed (%+v, %v) after one soft bounce", rcpt, sp, err)
					}
				}
			})
		})
	}
}

// TestFeedbackHostileBodies: whatever a body holds, once its credentials
// verify (a project chooses its own SendGrid key and Postmark password),
// the answer is a problem+json 4xx or a 200, never a 500: bodies that are
// not the provider's shape, and event ids that no index could hold as
// they are (a NUL, 5000 bytes).
func TestFeedbackHostileBodies(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		sgPath := f.configure(t, "sendgrid", map[string]any{"public_key": f.sendgrid.PublicKey})
		pmPath := f.configure(t, "postmark", map[string]any{"username": "mailgate", "password": "correct-horse-battery"})
		id := f.sentMessage(t, rcpts...)
		noise := make([]byte, 2500)
		_, _ = rand.Read(noise)
		long := hex.EncodeToString(noise) // no index could hold it, compressed or not
		sg := func(b string) response {
			sig, ts := f.sendgrid.Sign([]byte(b), f.clock.Now())
			return f.do(t, request{Method: http.MethodPost, Path: sgPath, Body: []byte(b),
				Header: map[string]string{"X-Twilio-Email-Event-Webhook-Signature": sig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}})
		}
		pm := func(b string) response {
			return f.do(t, request{Method: http.MethodPost, Path: pmPath, Body: []byte(b), Header: map[string]string{
				"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("mailgate:correct-horse-battery"))}})
		}
		for name, r := range map[string]response{
			"sendgrid NUL id":  sg(`[{"event":"bounce","type":"bounce","status":"5.1.1","email":"gone@example.net","sg_event_id":"a\u0000b","mailgate_id":"` + id + `"}]`),
			"sendgrid long id": sg(`[{"event":"spamreport","email":"angry@example.net","sg_event_id":"` + long + `","mailgate_id":"` + id + `"}]`),
			"sendgrid NUL everywhere": sg(`[{"event":"bounce","type":"\u0000","status":"\u0000","reason":"\u0000","email":"\u0000",` +
				`"smtp-id":"\u0000","mailgate_id":"\u0000","sg_event_id":"\u0000"}]`),
			"sendgrid object":       sg(`{"event":"bounce"}`),
			"sendgrid wrong types":  sg(`[{"event":1,"timestamp":"soon"}]`),
			"sendgrid empty":        sg(``),
			"postmark not json":     pm(`<xml/>`),
			"postmark bad time":     pm(`{"RecordType":"Bounce","ID":1,"Type":"HardBounce","BouncedAt":"yesterday"}`),
			"postmark bad id":       pm(`{"RecordType":"Bounce","ID":"one","Type":"HardBounce"}`),
			"postmark no id":        pm(`{"RecordType":"Bounce","Type":"HardBounce","Email":"gone@example.net"}`),
			"postmark huge numbers": pm(`{"RecordType":"Bounce","ID":1e400,"Type":"HardBounce","Email":"gone@example.net"}`),
		} {
			if r.Code >= 500 {
				t.Errorf("%s: %d %s", name, r.Code, r.Body)
			}
			if r.Code >= 400 && r.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: %d with Content-Type %q", name, r.Code, r.Header.Get("Content-Type"))
			}
		}
		wantStatuses(t, f.statuses(t, id), map[string]string{"gone@example.net": "bounced", "angry@example.net": "complained"})
	})
}

// failingApplier fails its first fail calls, as a database that cannot
// be written would, then applies through next.
type failingApplier struct {
	next FeedbackApplier
	fail int
}

func (a *failingApplier) Apply(ctx context.Context, provider, projectID string, events []feedback.Event) (int, error) {
	if a.fail > 0 {
		a.fail--
		return 0, store.ErrUnavailable
	}
	return a.next.Apply(ctx, provider, projectID, events)
}

// TestFeedbackMailgunRetryAfterFailedApply: a notification whose events
// could not be stored gives its one-time token back, so Mailgun's retry
// (the same token) is taken, not refused as a replay.
func TestFeedbackMailgunRetryAfterFailedApply(t *testing.T) {
	f := newFBEnv(t, "sqlite")
	const key = "key-0123456789abcdef0123456789abcdef"
	path := f.configure(t, "mailgun", map[string]any{"signing_key": key})
	id := f.sentMessage(t, rcpts...)
	rd := testsvc.StartRedis(t)
	cfg := Config{AllowedSenderDomains: []string{"shop.example"}, Now: f.clock.Now}
	deps := Deps{Store: f.store, Queue: f.queue, Limiter: ratelimit.New(ratelimit.Config{}, f.rdb),
		Registry: prometheus.NewRegistry()}
	f.feedbackDeps(&cfg, &deps, feedback.NewRedisTokens(redisAt(t, rd.URL()), ""))
	deps.Feedback = &failingApplier{next: deps.Feedback, fail: 1}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e := *f.testEnv
	e.srv, e.handler = srv, srv.Handler()
	signed := feedbacktest.Mailgun(body(t, "mailgun_failed.json", id), key, "tok-retry", f.clock.Now())
	post := func() response { return e.do(t, request{Method: http.MethodPost, Path: path, Body: signed}) }

	wantUnavailable(t, post())
	wantApplied(t, post(), 1)
	wantProblem(t, post(), http.StatusForbidden, "feedback-refused")
}

// mailgunEvent is a Mailgun webhook body (a template for
// feedbacktest.Mailgun) of event (failed, delivered, complained) with
// the given severity and delivery status, about rcpt of message id.
func mailgunEvent(eventID, event, severity, rcpt, id string, code int, enhanced, message string) []byte {
	ed := map[string]any{"id": eventID, "timestamp": 1796644801.5, "event": event, "recipient": rcpt,
		"message":        map[string]any{"headers": map[string]string{"message-id": id + "@example.com"}},
		"user-variables": map[string]string{"mailgate_id": id}}
	if event == "failed" {
		ed["severity"] = severity
		ed["delivery-status"] = map[string]any{"code": code, "enhanced-code": enhanced, "message": message}
	}
	b, _ := json.Marshal(map[string]any{"signature": map[string]string{"timestamp": "TIMESTAMP", "token": "TOKEN",
		"signature": "SIGNATURE"}, "event-data": ed})
	return b
}

// TestFeedbackMailgunTemporaryFailure: a temporary failure, which Mailgun
// retries, is recorded as a delay and changes nothing, so that what
// Mailgun reports next still applies: a permanent failure is a hard
// bounce that suppresses; a delivery and then a complaint are a
// complaint that suppresses.
func TestFeedbackMailgunTemporaryFailure(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		const key = "key-0123456789abcdef0123456789abcdef"
		path := f.configure(t, "mailgun", map[string]any{"signing_key": key})
		now := f.clock.Now()
		tok := 0
		post := func(b []byte) response {
			tok++
			return f.do(t, request{Method: http.MethodPost, Path: path,
				Body: feedbacktest.Mailgun(b, key, "tok-"+strconv.Itoa(tok), now)})
		}
		ctx := context.Background()
		suppression := func(email string) string {
			sp, err := f.store.GetSuppression(ctx, store.DefaultProjectID, email)
			if err != nil {
				return err.Error()
			}
			return sp.Reason
		}
		types := func(id string) []string {
			evs, err := f.store.MessageEvents(ctx, store.DefaultProjectID, id)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range evs {
				if e.Type != store.EventQueued && e.Type != store.EventSent {
					out = append(out, e.Type+" "+e.Recipient)
				}
			}
			return out
		}

		first := f.sentMessage(t, "slow@example.net")
		wantApplied(t, post(mailgunEvent("ev-1", "failed", "temporary", "slow@example.net", first, 451, "4.7.1",
			"Greylisted, please try again later")), 0)
		wantStatuses(t, f.statuses(t, first), map[string]string{"slow@example.net": "sent"})
		wantApplied(t, post(mailgunEvent("ev-2", "failed", "permanent", "slow@example.net", first, 550, "5.1.1",
			"No such user")), 1)
		wantStatuses(t, f.statuses(t, first), map[string]string{"slow@example.net": "bounced"})
		if got := suppression("slow@example.net"); got != store.ReasonHardBounce {
			t.Errorf("suppression %q after the permanent failure, want %s", got, store.ReasonHardBounce)
		}
		if d := cmp.Diff([]string{"message.bounced slow@example.net"}, types(first)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}

		second := f.sentMessage(t, "later@example.net")
		wantApplied(t, post(mailgunEvent("ev-3", "failed", "temporary", "later@example.net", second, 451, "4.7.1",
			"Greylisted, please try again later")), 0)
		wantApplied(t, post(mailgunEvent("ev-4", "delivered", "", "later@example.net", second, 0, "", "")), 1)
		wantApplied(t, post(mailgunEvent("ev-5", "complained", "", "later@example.net", second, 0, "", "")), 1)
		wantStatuses(t, f.statuses(t, second), map[string]string{"later@example.net": "complained"})
		if got := suppression("later@example.net"); got != store.ReasonComplaint {
			t.Errorf("suppression %q after the complaint, want %s", got, store.ReasonComplaint)
		}
		if d := cmp.Diff([]string{"message.complained later@example.net"}, types(second)); d != "" {
			t.Errorf("events (-want +got):\n%s", d)
		}
		delayed, _, err := f.store.ListInbound(ctx, store.InboundFilter{ProjectID: store.DefaultProjectID, Kind: "delayed"})
		if err != nil || len(delayed) != 2 {
			t.Errorf("%d delayed inbound rows (%v), want the 2 temporary failures", len(delayed), err)
		}
	})
}

// TestFeedbackConcurrentPut: first-time PUTs of one provider racing each
// other leave an endpoint whose secret opens under its id, so that
// notifications verify (not a 500 for a secret sealed to the losing id).
func TestFeedbackConcurrentPut(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := newFBEnv(t, engine)
		const key = "key-0123456789abcdef0123456789abcdef"
		id := f.sentMessage(t, rcpts...)
		for round := range 3 {
			paths := make([]string, 4)
			var wg sync.WaitGroup
			for i := range paths {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := f.do(t, request{Method: http.MethodPut, Path: "/v1/feedback/mailgun", Token: f.key,
						Body: map[string]any{"signing_key": key}})
					var v struct {
						Path string `json:"path"`
					}
					if r.Code == http.StatusOK && json.Unmarshal(r.Body, &v) == nil {
						paths[i] = v.Path
					} else {
						t.Errorf("PUT: %d %s", r.Code, r.Body)
					}
				}()
			}
			wg.Wait()
			for _, p := range paths[1:] {
				if p != paths[0] {
					t.Fatalf("round %d: concurrent PUTs answered paths %v", round, paths)
				}
			}
			r := f.do(t, request{Method: http.MethodPost, Path: paths[0],
				Body: feedbacktest.Mailgun(body(t, "mailgun_complained.json", id), key, "tok-put-"+strconv.Itoa(round), f.clock.Now())})
			wantCode(t, r, http.StatusOK)
			wantCode(t, f.do(t, request{Method: http.MethodDelete, Path: "/v1/feedback/mailgun", Token: f.key}), http.StatusNoContent)
		}
	})
}

// errReader fails every read, as a client that broke off its request.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestFeedbackRefusedBodies: a notification body over the route's limit
// or the server's (BodyLimit, refused before the route's handler), and
// one that cannot be read, are refused and counted as refused
// (too_large, unreadable).
func TestFeedbackRefusedBodies(t *testing.T) {
	f := newFBEnv(t, store.DialectSQLite, func(c *Config, _ *Deps) { c.BodyLimit = maxFeedbackBody + 1024 })
	path := f.configure(t, "postmark", map[string]any{"username": "mailgate", "password": "correct-horse-battery"})
	basic := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("mailgate:correct-horse-battery"))}

	wantCode(t, f.do(t, request{Method: http.MethodPost, Path: path, Body: make([]byte, maxFeedbackBody+1), Header: basic}),
		http.StatusRequestEntityTooLarge)
	if got := f.refused(t, "postmark", "too_large"); got != 1 {
		t.Errorf("too_large %v after a body over the route's limit, want 1", got)
	}
	wantCode(t, f.do(t, request{Method: http.MethodPost, Path: path, Body: make([]byte, maxFeedbackBody+2048), Header: basic}),
		http.StatusRequestEntityTooLarge)
	if got := f.refused(t, "postmark", "too_large"); got != 2 {
		t.Errorf("too_large %v after a body over the server's limit, want 2", got)
	}
	// Another route's 413 is not a refused notification.
	put := httptest.NewRequest(http.MethodPut, "/v1/feedback/postmark", bytes.NewReader(make([]byte, maxFeedbackBody+2048)))
	put.Header.Set("Authorization", "Bearer "+f.key)
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, put)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT over the limit: %d", rec.Code)
	}
	if got := f.refused(t, "postmark", "too_large"); got != 2 {
		t.Errorf("too_large %v after a PUT over the limit, want 2", got)
	}

	req := httptest.NewRequest(http.MethodPost, path, errReader{})
	req.Header.Set("Authorization", basic["Authorization"])
	rec = httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("unreadable body: %d %s", rec.Code, rec.Body)
	}
	if got := f.refused(t, "postmark", "unreadable"); got != 1 {
		t.Errorf("unreadable %v, want 1", got)
	}
}
