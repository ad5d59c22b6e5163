package worker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
)

// relaysRig is a rig whose deliverer sends through several relays in
// failover order (a relay with port 0 is the rig's sink), with per-relay
// limits and its own metrics.
type relaysRig struct {
	*rig
	policy  *ratelimit.Policy
	metrics *Metrics
}

func newRelaysRig(t *testing.T, relays []mta.RelayConfig, limits map[string][]ratelimit.Limit) *relaysRig {
	t.Helper()
	r := newRig(t, testsvc.SQLiteURL(t), nil, fastTimeouts())
	pools := make([]*mta.Pool, len(relays))
	for i, rc := range relays {
		if rc.Port == 0 {
			rc.Port = r.sink.Port
		}
		p, err := mta.NewPool(rc, fastTimeouts())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		pools[i] = p
	}
	policy := ratelimit.NewPolicy(ratelimit.PolicyConfig{Relay: limits, Now: r.now},
		ratelimit.New(ratelimit.Config{Prefix: "t:" + t.Name() + ":"}, r.rdb))
	metrics := NewMetrics()
	r.d = NewDeliverer(DeliveryConfig{Now: r.now}, DeliveryDeps{
		Store: r.st, Relay: mta.NewRelays(pools), Limits: policy, ReturnPath: r.verp,
		Keys: noKeys{}, Signer: mta.NewSigner(mta.SignerConfig{}), Metrics: metrics,
	})
	return &relaysRig{rig: r, policy: policy, metrics: metrics}
}

func (r *rig) now() time.Time { return r.clock }

func loopbackRelay(name string, port int) mta.RelayConfig {
	return mta.RelayConfig{Name: name, Host: "127.0.0.1", Port: port, TLS: mta.TLSNone, MaxConns: 2}
}

// unusedPort is a loopback port nobody listens on.
func unusedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDeliverLimitsFollowFailover: a send that fails over is charged to
// the relay it goes out through, so the backup relay's own limit holds
// mail back once the primary is down; every relay's answer is counted,
// the dead primary's network errors included.
func TestDeliverLimitsFollowFailover(t *testing.T) {
	ctx := context.Background()
	r := newRelaysRig(t, []mta.RelayConfig{loopbackRelay("primary", unusedPort(t)), loopbackRelay("backup", 0)},
		map[string][]ratelimit.Limit{"backup": {{Events: 1, Period: time.Hour, Burst: 1}}})
	first := r.accept([]string{"ann@example.org"}, nil, nil)
	second := r.accept([]string{"bob@example.org"}, nil, nil)

	if err := r.d.Deliver(ctx, first, 0); err != nil {
		t.Fatalf("first message: %v", err)
	}
	if m := r.message(first); m.Status != store.StatusSent {
		t.Fatalf("first message is %s, want sent through the backup", m.Status)
	}
	err := r.d.Deliver(ctx, second, 0)
	var held *heldBack
	if !errors.As(err, &held) || held.scope != "relay" {
		t.Fatalf("second message: %v, want held back by the backup relay's limit", err)
	}
	if m := r.message(second); m.Status != store.StatusQueued {
		t.Fatalf("second message is %s, want queued again", m.Status)
	}
	if got := len(r.sink.Messages()); got != 1 {
		t.Fatalf("the backup received %d messages, want 1 (its limit is 1 per hour)", got)
	}
	for _, tt := range []struct {
		relay, result, class string
		want                 float64
	}{
		{"primary", store.StatusDeferred, "network", 2},
		{"backup", store.StatusSent, "2xx", 1},
	} {
		if got := testutil.ToFloat64(r.metrics.attempts.WithLabelValues(tt.relay, tt.result, tt.class)); got != tt.want {
			t.Errorf("attempts{relay=%s,result=%s,code_class=%s} = %v, want %v", tt.relay, tt.result, tt.class, got, tt.want)
		}
	}
}

// TestDeliverSlowsDownTheRelayThatSaidSo: a primary answering 421 "slow
// down" is slowed down even though the backup then takes the message.
func TestDeliverSlowsDownTheRelayThatSaidSo(t *testing.T) {
	ctx := context.Background()
	busy, err := smtptest.Start(func(_, _ string, _ []byte) smtptest.Action {
		return reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many messages, slow down")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	r := newRelaysRig(t, []mta.RelayConfig{loopbackRelay("busy", busy.Port), loopbackRelay("backup", 0)}, nil)
	id := r.accept([]string{"ann@example.org"}, nil, nil)
	if err := r.d.Deliver(ctx, id, 0); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	if m := r.message(id); m.Status != store.StatusSent || len(r.sink.Messages()) != 1 {
		t.Fatalf("message is %s, backup received %d; want sent through the backup", m.Status, len(r.sink.Messages()))
	}
	for relay, wantSlowed := range map[string]bool{"busy": true, "backup": false} {
		ls, err := r.policy.RelayLimits(ctx, relay)
		if err != nil {
			t.Fatal(err)
		}
		if slowed := len(ls) > 0; slowed != wantSlowed {
			t.Errorf("relay %s limits %v: slowed down %v, want %v", relay, ls, slowed, wantSlowed)
		}
	}
	if got := testutil.ToFloat64(r.metrics.attempts.WithLabelValues("busy", store.StatusDeferred, "4xx")); got != 1 {
		t.Errorf("busy relay's 421 counted %v times, want 1", got)
	}
}

// staticKeys signs every domain with the same keys.
type staticKeys []mta.DKIMKey

func (k staticKeys) SigningKeys(context.Context, string, string) (SenderKeys, error) {
	return SenderKeys{Registered: true, Status: store.DomainVerified, Keys: k}, nil
}

// TestDeliverUnsignedDomain: mail from a sender domain without DKIM keys
// (allowed by configuration, not registered) goes out unsigned, logged and
// counted; with keys it is signed and not counted.
func TestDeliverUnsignedDomain(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		keys       KeySource
		wantSigned bool
	}{
		{"no keys", noKeys{}, false},
		{"registered", staticKeys{{Domain: "shop.example", Selector: "s1", Signer: edKey}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelaysRig(t, []mta.RelayConfig{loopbackRelay("sink", 0)}, nil)
			var logs bytes.Buffer
			r.d.deps.Keys, r.d.deps.Log = tt.keys, slog.New(slog.NewTextHandler(&logs, nil))
			id := r.accept([]string{"ann@example.org"}, nil, nil)
			if err := r.d.Deliver(context.Background(), id, 0); err != nil {
				t.Fatal(err)
			}
			msgs := r.sink.Messages()
			if len(msgs) != 1 {
				t.Fatalf("sink received %d messages", len(msgs))
			}
			m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
			if err != nil {
				t.Fatal(err)
			}
			if signed := m.Header.Get("DKIM-Signature") != ""; signed != tt.wantSigned {
				t.Errorf("signed %v, want %v", signed, tt.wantSigned)
			}
			counted := testutil.ToFloat64(r.metrics.unsigned.WithLabelValues("shop.example"))
			logged := strings.Contains(logs.String(), "sending unsigned") && strings.Contains(logs.String(), "domain=shop.example")
			if wantUnsigned := !tt.wantSigned; (counted == 1) != wantUnsigned || logged != wantUnsigned {
				t.Errorf("unsigned counted %v, logged %v; want %v (log: %s)", counted, logged, wantUnsigned, logs.String())
			}
		})
	}
}
