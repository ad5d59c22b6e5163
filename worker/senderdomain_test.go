package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/mail"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/store"
)

// TestSenderDomainRecheckedAtSend: the worker re-checks the sender domain
// when it sends, since it may have changed after the API accepted the
// message: a name another project verified fails (even when allowed
// without registration), a deleted one fails unless allowed, and in
// production one not verified defers; development sends from a pending
// domain as before.
func TestSenderDomainRecheckedAtSend(t *testing.T) {
	for _, engine := range []string{store.DialectSQLite, store.DialectPostgres} {
		for _, tt := range []struct {
			name       string
			production bool
			allowed    bool
			// setup changes shop.example after the message is accepted
			// (it is registered in the message's project first).
			setup func(t *testing.T, st *store.Store)
			// want is the recipients' status; reason that of their event.
			want, reason string
			signed       bool
		}{
			{"verified, production", true, false, verify(store.DefaultProjectID, true), store.StatusSent, "", true},
			{"pending, development", false, false, nil, store.StatusSent, "", true},
			{"pending, production", true, false, nil, store.StatusDeferred, "sender_domain_unverified", false},
			{"failed, production", true, false, func(t *testing.T, st *store.Store) {
				verify(store.DefaultProjectID, true)(t, st)
				verify(store.DefaultProjectID, false)(t, st)
			}, store.StatusDeferred, "sender_domain_unverified", false},
			{"verified by another project", false, false, otherVerifies, store.StatusFailed, "sender_domain_not_owned", false},
			{"deleted", false, false, deleteDomain, store.StatusFailed, "sender_domain_not_registered", false},
			{"deleted, allowed", false, true, deleteDomain, store.StatusSent, "", false},
			{"deleted, allowed, verified by another project", false, true, func(t *testing.T, st *store.Store) {
				deleteDomain(t, st)
				otherVerifies(t, st)
			}, store.StatusFailed, "sender_domain_not_owned", false},
		} {
			t.Run(engine+"/"+tt.name, func(t *testing.T) {
				url := testsvc.SQLiteURL(t)
				if engine == store.DialectPostgres {
					url = testsvc.PostgresURL(t)
				}
				r := newRig(t, url, nil, fastTimeouts())
				kr := newKeyring(t)
				ctx := context.Background()
				if _, err := r.st.CreateDomain(ctx, store.Domain{ProjectID: store.DefaultProjectID,
					Name: "shop.example", Keys: sealedKeys(t, kr, "shop.example", "a", nil)}); err != nil {
					t.Fatal(err)
				}
				r.d.deps.Keys = NewStoreKeys(r.st, kr, time.Hour, r.now)
				r.d.cfg.Production = tt.production
				if tt.allowed {
					r.d.cfg.AllowedSenderDomains = []string{"shop.example"}
				}
				id := r.accept([]string{"ann@example.org", "bob@example.org"}, nil, nil)
				if tt.setup != nil {
					tt.setup(t, r.st)
				}
				err := r.d.Deliver(ctx, id, 0)
				if deferred := errors.Is(err, errDeferred); deferred != (tt.want == store.StatusDeferred) ||
					(err != nil && !deferred) {
					t.Errorf("Deliver = %v, want deferred %v", err, tt.want == store.StatusDeferred)
				}
				msgs := r.sink.Messages()
				if sent := tt.want == store.StatusSent; (len(msgs) == 2) != sent || (!sent && len(msgs) != 0) {
					t.Fatalf("the relay received %d messages, want sent %v", len(msgs), sent)
				}
				for _, m := range msgs {
					pm, err := mail.ReadMessage(bytes.NewReader(m.Data))
					if err != nil {
						t.Fatal(err)
					}
					if signed := pm.Header.Get("DKIM-Signature") != ""; signed != tt.signed {
						t.Errorf("signed %v, want %v", signed, tt.signed)
					}
				}
				for _, rc := range r.message(id).Recipients {
					if rc.Status != tt.want {
						t.Errorf("recipient %s: %s %q, want %s", rc.Email, rc.Status, rc.SMTPResponse, tt.want)
					}
				}
				if tt.reason == "" {
					return
				}
				evs, err := r.st.MessageEvents(ctx, store.DefaultProjectID, id)
				if err != nil {
					t.Fatal(err)
				}
				wantType := store.EventFailed
				if tt.want == store.StatusDeferred {
					wantType = store.EventDeferred
				}
				n := 0
				for _, e := range evs {
					var data struct{ Reason string }
					_ = json.Unmarshal(e.Data, &data)
					if e.Type == wantType && data.Reason == tt.reason {
						n++
					}
				}
				if n != 2 {
					t.Errorf("%d %s events with reason %s, want 2: %+v", n, wantType, tt.reason, evs)
				}
			})
		}
	}
}

// verify records a DKIM check of a project's shop.example.
func verify(projectID string, found bool) func(t *testing.T, st *store.Store) {
	return func(t *testing.T, st *store.Store) {
		t.Helper()
		d, err := st.GetDomain(context.Background(), projectID, "shop.example")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordDomainCheck(context.Background(), d, found, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// otherVerifies registers shop.example in another project and verifies it
// there.
func otherVerifies(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	p, err := st.CreateProject(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDomain(ctx, store.Domain{ProjectID: p.ID, Name: "shop.example",
		Keys: sealedKeys(t, newKeyring(t), "shop.example", "o", nil)}); err != nil {
		t.Fatal(err)
	}
	verify(p.ID, true)(t, st)
}

func deleteDomain(t *testing.T, st *store.Store) {
	t.Helper()
	if err := st.DeleteDomain(context.Background(), store.DefaultProjectID, "shop.example"); err != nil {
		t.Fatal(err)
	}
}
