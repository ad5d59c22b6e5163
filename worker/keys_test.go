package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/store"
)

// sealer seals secrets (keyring.Keyring).
type sealer interface {
	Seal(plain, aad []byte) ([]byte, error)
}

// newKeyring is a fresh master key.
func newKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// sealedKeys makes an RSA and an Ed25519 key under selectors base+"r" and
// base+"e", their private keys sealed by kr as the API seals them; pem,
// when set, is sealed instead of each real private key.
func sealedKeys(t *testing.T, kr sealer, domain, base string, pem []byte) []store.DKIMKey {
	t.Helper()
	var out []store.DKIMKey
	for _, alg := range []string{dkimkey.RSA, dkimkey.Ed25519} {
		sel := base + alg[:1]
		signer, err := dkimkey.GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		record, err := dkimkey.DNSRecordValue(signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		plain := pem
		if plain == nil {
			if plain, err = dkimkey.MarshalPrivateKey(signer); err != nil {
				t.Fatal(err)
			}
		}
		sealed, err := kr.Seal(plain, dkimkey.SealAAD(domain, sel))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, store.DKIMKey{Selector: sel, Algorithm: alg, PrivateKeySealed: sealed, PublicRecord: record})
	}
	return out
}

func keySelectors(keys []mta.DKIMKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Selector
	}
	slices.Sort(out)
	return out
}

// TestRegisteredDomainNeverUnsigned: on both engines, with the worker's
// own key source, a registered domain's mail is signed; when its keys
// cannot be loaded (sealed under another master key, or not a key once
// opened) the attempt defers every recipient, logged without key material
// and counted, and nothing reaches the relay; only a domain that is not
// registered (allowed by configuration) goes out unsigned.
func TestRegisteredDomainNeverUnsigned(t *testing.T) {
	for _, engine := range []string{store.DialectSQLite, store.DialectPostgres} {
		for _, tt := range []struct {
			name string
			// keys registers shop.example (nil: not registered).
			keys       func(t *testing.T, kr *keyring.Keyring) []store.DKIMKey
			wantSigned int // DKIM signatures; -1 when nothing may be sent
		}{
			{"registered", func(t *testing.T, kr *keyring.Keyring) []store.DKIMKey {
				return sealedKeys(t, kr, "shop.example", "a", nil)
			}, 2},
			{"sealed under another master key", func(t *testing.T, _ *keyring.Keyring) []store.DKIMKey {
				return sealedKeys(t, newKeyring(t), "shop.example", "a", nil)
			}, -1},
			{"opens to no key", func(t *testing.T, kr *keyring.Keyring) []store.DKIMKey {
				return sealedKeys(t, kr, "shop.example", "a", []byte("-----BEGIN PRIVATE KEY-----\n"+notAKey+"\n-----END PRIVATE KEY-----\n"))
			}, -1},
			{"not registered", nil, 0},
		} {
			t.Run(engine+"/"+tt.name, func(t *testing.T) {
				url := testsvc.SQLiteURL(t)
				if engine == store.DialectPostgres {
					url = testsvc.PostgresURL(t)
				}
				r := newRig(t, url, nil, fastTimeouts())
				kr := newKeyring(t)
				var sealed []store.DKIMKey
				if tt.keys != nil {
					sealed = tt.keys(t, kr)
					if _, err := r.st.CreateDomain(context.Background(), store.Domain{ProjectID: store.DefaultProjectID,
						Name: "shop.example", Keys: sealed}); err != nil {
						t.Fatal(err)
					}
				}
				var logs bytes.Buffer
				r.d.deps.Keys = NewStoreKeys(r.st, kr, time.Hour, r.now)
				r.d.cfg.AllowedSenderDomains = []string{"shop.example"}
				r.d.deps.Log = slog.New(slog.NewTextHandler(&logs, nil))
				id := r.accept([]string{"ann@example.org", "bob@example.org"}, nil, nil)
				err := r.d.Deliver(context.Background(), id, 0)
				metrics := r.d.deps.Metrics
				unsigned := testutil.ToFloat64(metrics.unsigned.WithLabelValues("shop.example"))
				unavailable := testutil.ToFloat64(metrics.dkimUnavailable.WithLabelValues("shop.example"))
				if tt.wantSigned < 0 {
					checkKeysDeferred(t, r, id, err, unsigned, unavailable)
					for _, k := range sealed {
						if strings.Contains(logs.String(), string(k.PrivateKeySealed)) || strings.Contains(logs.String(), notAKey) {
							t.Errorf("the log shows key material:\n%s", logs.String())
						}
					}
					if !strings.Contains(logs.String(), "domain=shop.example") {
						t.Errorf("the deferral is not logged with its domain:\n%s", logs.String())
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				msgs := r.sink.Messages()
				if len(msgs) != 2 {
					t.Fatalf("sink received %d messages, want 2", len(msgs))
				}
				for _, m := range msgs {
					parsed, err := mail.ReadMessage(bytes.NewReader(m.Data))
					if err != nil {
						t.Fatal(err)
					}
					if n := len(parsed.Header["Dkim-Signature"]); n != tt.wantSigned {
						t.Errorf("%d DKIM signatures, want %d", n, tt.wantSigned)
					}
				}
				if wantUnsigned := float64(btoi(tt.wantSigned == 0)); unsigned != wantUnsigned || unavailable != 0 {
					t.Errorf("counted %v unsigned (want %v), %v unavailable (want 0)", unsigned, wantUnsigned, unavailable)
				}
			})
		}
	}
}

// notAKey is the body of a PEM block that does not parse.
const notAKey = "bm90IGEga2V5IGF0IGFsbA=="

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkKeysDeferred: the attempt deferred both recipients for want of
// DKIM keys, nothing reached the relay, and it was counted as such.
func checkKeysDeferred(t *testing.T, r *rig, id string, err error, unsigned, unavailable float64) {
	t.Helper()
	if !errors.Is(err, errDeferred) {
		t.Errorf("Deliver = %v, want the deferral (a retry on the backoff schedule)", err)
	}
	if n := len(r.sink.Messages()); n != 0 {
		t.Fatalf("the relay received %d messages; a registered domain's mail must not leave unsigned", n)
	}
	m := r.message(id)
	if m.Status != store.StatusDeferred {
		t.Errorf("message status %s, want deferred", m.Status)
	}
	for _, rc := range m.Recipients {
		if rc.Status != store.StatusDeferred || !strings.Contains(rc.SMTPResponse, "DKIM keys of shop.example cannot be loaded") {
			t.Errorf("recipient %s: %s %q, want deferred for want of DKIM keys", rc.Email, rc.Status, rc.SMTPResponse)
		}
	}
	evs, err := r.st.MessageEvents(context.Background(), store.DefaultProjectID, id)
	if err != nil {
		t.Fatal(err)
	}
	deferred := 0
	for _, e := range evs {
		var data struct{ Reason string }
		_ = json.Unmarshal(e.Data, &data)
		if e.Type == store.EventDeferred && data.Reason == "dkim_unavailable" {
			deferred++
		}
	}
	if deferred != 2 {
		t.Errorf("%d message.deferred events with reason dkim_unavailable, want 2: %+v", deferred, evs)
	}
	if unsigned != 0 || unavailable != 1 {
		t.Errorf("counted %v unsigned (want 0), %v unavailable (want 1)", unsigned, unavailable)
	}
}

// TestKeysDroppedOnResubscribe: keys changed while the worker's
// subscription was down (its Redis restarted) are not missed: the
// resubscription drops the whole cache, though its TTL is an hour.
func TestKeysDroppedOnResubscribe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	redisServer := testsvc.StartRedis(t)
	rdb, err := queue.OpenRedis(redisServer.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st, err := store.Open(ctx, store.Config{URL: testsvc.SQLiteURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(t)
	keys := NewStoreKeys(st, kr, time.Hour, nil)
	subscribed := make(chan struct{}, 4)
	listening := make(chan error, 1)
	go func() { listening <- keys.Listen(ctx, queue.NewRevocations(rdb), func() { subscribed <- struct{}{} }) }()
	waitSubscribed(t, subscribed)

	if _, err := st.CreateDomain(ctx, store.Domain{ProjectID: store.DefaultProjectID, Name: "shop.example",
		Keys: sealedKeys(t, kr, "shop.example", "a", nil)}); err != nil {
		t.Fatal(err)
	}
	checkSelectors(t, keys, "shop.example", "ae", "ar")
	// A rotation nobody broadcasts (as if made while the subscription was
	// down): the cache still answers.
	if _, err := st.AddDKIMKeys(ctx, store.DefaultProjectID, "shop.example", sealedKeys(t, kr, "shop.example", "b", nil)); err != nil {
		t.Fatal(err)
	}
	checkSelectors(t, keys, "shop.example", "ae", "ar")

	redisServer.Restart()
	waitSubscribed(t, subscribed)
	checkSelectors(t, keys, "shop.example", "ae", "ar", "be", "br")
	cancel()
	if err := <-listening; err != nil {
		t.Errorf("Listen = %v", err)
	}
}

func waitSubscribed(t *testing.T, subscribed <-chan struct{}) {
	t.Helper()
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		t.Fatal("no subscription to the domain changes within 30 s")
	}
}

func checkSelectors(t *testing.T, keys *StoreKeys, domain string, want ...string) {
	t.Helper()
	sk, err := keys.SigningKeys(context.Background(), store.DefaultProjectID, domain)
	if err != nil {
		t.Fatal(err)
	}
	got := sk.Keys
	if !slices.Equal(keySelectors(got), want) {
		t.Errorf("signing selectors of %s %v, want %v", domain, keySelectors(got), want)
	}
}
