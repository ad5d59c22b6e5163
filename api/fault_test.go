package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/internal/dbfault"
	"github.com/mailgate/mailgate/store"
)

// errInjected is the error of an injected fault.
var errInjected = errors.New("injected fault")

// TestBatchTransientFailureIsNotStored: a batch whose sender-domain or
// suppression check fails once commits nothing and keeps no answer under
// its Idempotency-Key (a failed check of an item is a 503 with
// Retry-After for the whole request); the retry with the same key commits
// the batch once, and a replay answers what the retry did.
func TestBatchTransientFailureIsNotStored(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		f := &dbfault.Faults{}
		e := newEnvWrapped(t, engine, f.Wrap)
		if _, err := e.store.CreateDomain(context.Background(), store.Domain{ProjectID: store.DefaultProjectID, Name: "mail.example"}); err != nil {
			t.Fatal(err)
		}
		db := e.sqlDB()
		for _, tc := range []struct {
			name, match, from string
			want503           bool
		}{
			{"sender domain", "FROM domains", "Shop <orders@mail.example>", true},
			// A failed commit is answered as store errors are (a 503 for
			// ErrUnavailable); either way the key is released.
			{"suppressions", "FROM suppressions", "Shop <orders@shop.example>", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				post := func() response {
					body := map[string]any{"messages": []any{with(message(), "from", tc.from), message()}}
					return e.do(t, request{Method: http.MethodPost, Path: "/v1/messages/batch", Token: e.sender, Body: body,
						Header: map[string]string{"Idempotency-Key": "transient " + tc.name}})
				}
				before := count(t, db, "SELECT COUNT(*) FROM messages")
				fired := f.Fired()
				f.FailStatement(tc.match, errInjected)
				r := post()
				if f.Fired() == fired {
					t.Fatalf("the %s check never ran", tc.name)
				}
				if tc.want503 {
					wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
					if r.Header.Get("Retry-After") == "" {
						t.Error("503 without Retry-After")
					}
				} else if r.Code < 500 {
					t.Fatalf("status %d after a failed check, want 5xx; body %s", r.Code, r.Body)
				}
				if n := count(t, db, "SELECT COUNT(*) FROM messages"); n != before {
					t.Fatalf("%d messages committed by the failed request", n-before)
				}
				retry := post()
				wantCode(t, retry, http.StatusOK)
				if retry.Header.Get("Idempotent-Replayed") != "" || bytes.Contains(retry.Body, []byte(`"error"`)) {
					t.Fatalf("retry replayed or failed an item: %s", retry.Body)
				}
				replay := post()
				if !bytes.Equal(replay.Body, retry.Body) || replay.Header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("replay %s, want %s replayed", replay.Body, retry.Body)
				}
				if n := count(t, db, "SELECT COUNT(*) FROM messages"); n != before+2 {
					t.Errorf("%d messages committed, want 2", n-before)
				}
			})
		}
	})
}

// TestSendStaleClaimTakenOver: request A's claim goes stale and B takes
// it over. A's release then leaves B's claim (C, arriving while B runs,
// is told 409) and A's commit writes nothing (ErrIdempotencyLost); B
// finishes, and a replay answers B's response.
func TestSendStaleClaimTakenOver(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		ctx := context.Background()
		keyID, _, _ := apikey.Parse(e.sender)
		key := store.APIKey{ID: keyID, ProjectID: store.DefaultProjectID}
		req, _, err := DecodeMessageRequest(requestBody(t, message()))
		if err != nil {
			t.Fatal(err)
		}
		hash := requestHash(http.MethodPost+" /v1/messages", req)
		claim := func() idemClaim {
			st, err := e.store.ClaimIdempotencyKey(ctx, keyID, "stale", hash, e.srv.cfg.IdempotencyStale)
			if err != nil || !st.Fresh {
				t.Fatalf("claim = %+v, %v; want fresh", st, err)
			}
			return idemClaim{s: e.srv, keyID: keyID, key: "stale", token: st.Token}
		}
		// commit is the rest of a request holding ic; it returns the
		// answer it recorded.
		commit := func(ic idemClaim) ([]byte, error) {
			acc, err := e.srv.prepare(key, req, mustValidate(t, e, req), "")
			if err != nil {
				t.Fatal(err)
			}
			var body []byte
			_, err = e.store.CommitMessage(ctx, acc.msg, ic.result(func(cs []store.Created) (int, []byte, error) {
				body, err = json.Marshal(accepted{msg: acc.msg, created: cs[0]}.view())
				return http.StatusAccepted, body, err
			}))
			return body, err
		}
		send := func() response {
			return e.do(t, request{Method: http.MethodPost, Path: "/v1/messages", Token: e.sender, Body: message(),
				Header: map[string]string{"Idempotency-Key": "stale"}})
		}
		a := claim()
		e.clock.Advance(e.srv.cfg.IdempotencyStale + time.Second)
		b := claim()
		a.release(ctx)
		wantProblem(t, send(), http.StatusConflict, "idempotency-in-flight") // C
		if _, err := commit(a); !errors.Is(err, store.ErrIdempotencyLost) {
			t.Errorf("A's commit = %v, want ErrIdempotencyLost", err)
		}
		answer, err := commit(b)
		if err != nil {
			t.Fatalf("B's commit: %v", err)
		}
		replay := send()
		if !bytes.Equal(replay.Body, answer) || replay.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay %s, want B's answer %s replayed", replay.Body, answer)
		}
		if n := count(t, e.sqlDB(), "SELECT COUNT(*) FROM messages"); n != 1 {
			t.Errorf("%d messages, want B's alone", n)
		}
	})
}

// mustValidate is ValidateMessage for a request the test knows is valid.
func mustValidate(t *testing.T, e *testEnv, req *MessageRequest) *ValidMessage {
	t.Helper()
	vm, ferrs, err := ValidateMessage(req, e.srv.cfg.Limits, e.clock.Now(), "")
	if err != nil || len(ferrs) > 0 {
		t.Fatalf("validate: %v %v", ferrs, err)
	}
	return vm
}
