package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/store"
)

// brand is a sender domain that is not in the harness's
// AllowedSenderDomains, so only its registration and status count.
const brand = "brand.example"

// brandMessage is message() sent from brand.
func brandMessage() map[string]any {
	return with(message(), "from", "Brand <news@"+brand+">")
}

// tenant is a project with a key for domains and one for sending.
type tenant struct {
	id, domains, sender string
}

func (e *domainEnv) tenant(name string) tenant {
	e.t.Helper()
	id := e.project(name)
	return tenant{id: id, domains: e.key(id, apikey.ScopeDomains),
		sender: e.key(id, apikey.ScopeSend, apikey.ScopeRead)}
}

// defaultTenant is the default project with the env's keys.
func (e *domainEnv) defaultTenant() tenant {
	return tenant{id: store.DefaultProjectID, domains: e.domains, sender: e.sender}
}

// register creates brand in the tenant's project with DKIM selector sel,
// publishes its DKIM records when publishDKIM, and returns the domain.
func (e *domainEnv) register(t *testing.T, tn tenant, sel string, publishDKIM bool) wireDomain {
	t.Helper()
	r := e.post(t, "/v1/domains", tn.domains, map[string]any{"name": brand, "dkim": map[string]any{"selector": sel}})
	wantCode(t, r, http.StatusCreated)
	var d wireDomain
	r.decode(t, &d)
	if d.Status != store.DomainPending || d.VerifiedAt != nil || d.CheckedAt != nil {
		t.Fatalf("new domain: status %q verified_at %v checked_at %v; want pending, never verified or checked",
			d.Status, d.VerifiedAt, d.CheckedAt)
	}
	if publishDKIM {
		for _, rec := range dkimRecords(d) {
			publish(e.dns, rec)
		}
	}
	return d
}

// dkimRecords are the DKIM records among d's dns_records.
func dkimRecords(d wireDomain) []wireDNSRecord {
	var out []wireDNSRecord
	for _, r := range d.DNSRecords {
		if strings.Contains(r.Name, "._domainkey.") {
			out = append(out, r)
		}
	}
	return out
}

// verifyAs posts verify for brand with the tenant's domains key.
func (e *domainEnv) verifyAs(t testing.TB, tn tenant) response {
	t.Helper()
	return e.post(t, "/v1/domains/"+brand+"/verify", tn.domains, nil)
}

// wantVerified verifies brand as tn and wants it verified.
func (e *domainEnv) wantVerified(t *testing.T, tn tenant) {
	t.Helper()
	r := e.verifyAs(t, tn)
	wantCode(t, r, http.StatusOK)
	var v wireVerification
	r.decode(t, &v)
	if v.Status != store.DomainVerified {
		t.Fatalf("verify: status %q, want verified; %+v", v.Status, v)
	}
}

// wantFromRefused sends body as token and wants the 422 naming field,
// its message holding every one of says.
func (e *domainEnv) wantFromRefused(t *testing.T, path, token string, body any, field string, says ...string) {
	t.Helper()
	r := e.post(t, path, token, body)
	if path == "/v1/messages/batch" {
		wantCode(t, r, http.StatusOK)
		var b struct {
			Results []struct {
				Error *Problem `json:"error"`
			} `json:"results"`
		}
		r.decode(t, &b)
		if len(b.Results) != 1 || b.Results[0].Error == nil {
			t.Fatalf("batch answer %s, want its item refused", r.Body)
		}
		checkFromProblem(t, *b.Results[0].Error, field, says)
		return
	}
	checkFromProblem(t, wantProblem(t, r, http.StatusUnprocessableEntity, "validation", field), field, says)
}

func checkFromProblem(t *testing.T, p Problem, field string, says []string) {
	t.Helper()
	if p.Status != http.StatusUnprocessableEntity || len(p.Errors) != 1 || p.Errors[0].Field != field {
		t.Fatalf("problem %+v, want one 422 error naming %s", p, field)
	}
	for _, s := range says {
		if !strings.Contains(p.Errors[0].Message, s) {
			t.Errorf("message %q does not say %q", p.Errors[0].Message, s)
		}
	}
}

// TestVerifiedDomainBelongsToItsProject: once project A verified a name,
// project B may register it but not verify it (409, before and after
// publishing its own DKIM record) nor send from it (422), in development and in
// production mode; A sends from it without a warning, and its event log
// has the domain.verified event, without a message.
func TestVerifiedDomainBelongsToItsProject(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		for _, production := range []bool{false, true} {
			name := map[bool]string{false: "development", true: "production"}[production]
			t.Run(name, func(t *testing.T) {
				e := newDomainEnvWith(t, engine, []string{"relay.example"}, func(c *Config, _ *Deps) { c.Production = production })
				a, b := e.defaultTenant(), e.tenant("tenant-b")
				e.register(t, a, "ta", true)
				e.wantVerified(t, a)
				var got wireDomain
				r := e.get(t, "/v1/domains/"+brand, a.domains)
				wantCode(t, r, http.StatusOK)
				r.decode(t, &got)
				now := timeString(e.clock.Now())
				if got.Status != store.DomainVerified || got.VerifiedAt == nil || *got.VerifiedAt != now ||
					got.CheckedAt == nil || *got.CheckedAt != now {
					t.Errorf("verified domain: status %q verified_at %v checked_at %v, want verified at %s",
						got.Status, got.VerifiedAt, got.CheckedAt, now)
				}

				bDomain := e.register(t, b, "tb", false)
				wantProblem(t, e.verifyAs(t, b), http.StatusConflict, "domain-taken")
				for _, rec := range dkimRecords(bDomain) { // B proves control too: still A's
					publish(e.dns, rec)
				}
				p := wantProblem(t, e.verifyAs(t, b), http.StatusConflict, "domain-taken")
				if !strings.Contains(p.Detail, brand) {
					t.Errorf("409 detail %q does not name the domain", p.Detail)
				}
				r = e.get(t, "/v1/domains/"+brand, b.domains)
				r.decode(t, &got)
				if got.Status != store.DomainPending {
					t.Errorf("B's domain after a refused verify: %q, want pending", got.Status)
				}
				e.wantFromRefused(t, "/v1/messages", b.sender, brandMessage(), "/from", brand, "another project")
				e.wantFromRefused(t, "/v1/messages/batch", b.sender, map[string]any{"messages": []any{brandMessage()}},
					"/messages/0/from", brand, "another project")

				if acc := e.send(t, a.sender, brandMessage()); len(acc.Warnings) != 0 {
					t.Errorf("send from a verified domain warned: %v", acc.Warnings)
				}
				checkDomainEvents(t, e, a, []string{store.EventDomainVerified + " " + brand})
				checkDomainEvents(t, e, b, nil)
			})
		}
	})
}

// checkDomainEvents compares the tenant's domain events (newest first,
// "type domain") with want; each has no message or recipient.
func checkDomainEvents(t *testing.T, e *domainEnv, tn tenant, want []string) {
	t.Helper()
	r := e.get(t, "/v1/events", tn.sender)
	wantCode(t, r, http.StatusOK)
	var page wireList[wireEvent]
	r.decode(t, &page)
	var got []string
	for _, ev := range page.Data {
		if !strings.HasPrefix(ev.Type, "domain.") {
			continue
		}
		if ev.MessageID != "" || ev.Recipient != "" || ev.Sequence != 0 || !strings.Contains(string(ev.Data), `"status":"verified"`) {
			t.Errorf("domain event %+v: want no message, recipient or sequence, and data with the status", ev)
		}
		got = append(got, ev.Type+" "+ev.Domain)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("domain events %q, want %q", got, want)
	}
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPendingDomainByMode: a registered domain not verified yet is
// refused in production (422 naming /from, the DKIM record to publish and
// verify) until verify finds its record; in development it is accepted,
// with a warning in the answer (single and batch) and in the log.
func TestPendingDomainByMode(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		t.Run("production", func(t *testing.T) {
			e := newDomainEnvWith(t, engine, []string{"relay.example"}, func(c *Config, _ *Deps) { c.Production = true })
			a := e.defaultTenant()
			d := e.register(t, a, "ta", false)
			recordName := dkimRecords(d)[0].Name
			e.wantFromRefused(t, "/v1/messages", a.sender, brandMessage(), "/from",
				brand, "not verified", recordName, "/v1/domains/"+brand+"/verify")
			e.wantFromRefused(t, "/v1/messages/batch", a.sender, map[string]any{"messages": []any{brandMessage()}},
				"/messages/0/from", recordName)
			for _, rec := range dkimRecords(d) {
				publish(e.dns, rec)
			}
			e.wantVerified(t, a)
			if acc := e.send(t, a.sender, brandMessage()); len(acc.Warnings) != 0 {
				t.Errorf("send once verified warned: %v", acc.Warnings)
			}
		})
		t.Run("development", func(t *testing.T) {
			var logs syncBuffer
			e := newDomainEnvWith(t, engine, []string{"relay.example"}, func(_ *Config, d *Deps) {
				d.Log = slog.New(slog.NewTextHandler(&logs, nil))
			})
			a := e.defaultTenant()
			d := e.register(t, a, "ta", false)
			recordName := dkimRecords(d)[0].Name
			acc := e.send(t, a.sender, brandMessage())
			if len(acc.Warnings) != 1 || !strings.Contains(acc.Warnings[0], "not verified") ||
				!strings.Contains(acc.Warnings[0], recordName) || !strings.Contains(acc.Warnings[0], "development") {
				t.Errorf("warnings %q, want one saying the domain is not verified, its record and the mode", acc.Warnings)
			}
			r := e.post(t, "/v1/messages/batch", a.sender, map[string]any{"messages": []any{brandMessage(), message()}})
			wantCode(t, r, http.StatusOK)
			var b struct {
				Results []struct {
					ID       string   `json:"id"`
					Warnings []string `json:"warnings"`
				} `json:"results"`
			}
			r.decode(t, &b)
			if len(b.Results) != 2 || b.Results[0].ID == "" || len(b.Results[0].Warnings) != 1 || len(b.Results[1].Warnings) != 0 {
				t.Errorf("batch answer %s: want the brand item accepted with a warning, the allowed one without", r.Body)
			}
			if !strings.Contains(logs.String(), "unverified sender domain") || !strings.Contains(logs.String(), brand) {
				t.Errorf("the log does not warn about the unverified domain:\n%s", logs.String())
			}
		})
	})
}

// TestConcurrentVerifyHTTP: two projects that both published their DKIM
// record for one name verify it at the same moment: exactly one gets 200
// verified, the other 409.
func TestConcurrentVerifyHTTP(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newDomainEnvWith(t, engine, []string{"relay.example"})
		tenants := []tenant{e.defaultTenant(), e.tenant("tenant-b")}
		for i, tn := range tenants {
			e.register(t, tn, "t"+string(rune('a'+i)), true)
		}
		codes := make([]int, len(tenants))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, tn := range tenants {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes[i] = e.verifyAs(t, tn).Code
			}()
		}
		close(start)
		wg.Wait()
		ok, conflict := 0, 0
		for _, c := range codes {
			switch c {
			case http.StatusOK:
				ok++
			case http.StatusConflict:
				conflict++
			}
		}
		if ok != 1 || conflict != 1 {
			t.Fatalf("verify answers %v, want one 200 and one 409", codes)
		}
		verified := 0
		for _, tn := range tenants {
			var d wireDomain
			e.get(t, "/v1/domains/"+brand, tn.domains).decode(t, &d)
			if d.Status == store.DomainVerified {
				verified++
			}
		}
		if verified != 1 {
			t.Errorf("%d projects have %s verified, want 1", verified, brand)
		}
	})
}

// TestVerifyElsewhereEvictsCachedPending: with the domain cache on, a
// project sending from its pending domain in development (cached as
// sendable, with its warning, on two replicas) is refused right after
// another project verifies the name: the verification evicts the name for
// every project, on this replica at once and on the other through the
// broadcast.
func TestVerifyElsewhereEvictsCachedPending(t *testing.T) {
	e := newDomainEnvWith(t, store.DialectSQLite, []string{"relay.example"})
	cacheWithBroadcast(e.testEnv)
	replicaB := startReplica(t, e.testEnv, Config{})
	a, b := e.defaultTenant(), e.tenant("tenant-b")
	e.register(t, b, "tb", false)
	for _, env := range []*testEnv{e.testEnv, replicaB, e.testEnv, replicaB} { // the second round comes from the caches
		if acc := env.send(t, b.sender, brandMessage()); len(acc.Warnings) != 1 {
			t.Fatalf("send from a pending domain: warnings %q, want one", acc.Warnings)
		}
	}
	e.register(t, a, "ta", true)
	e.wantVerified(t, a)
	e.wantFromRefused(t, "/v1/messages", b.sender, brandMessage(), "/from", "another project")
	deadline := time.Now().Add(5 * time.Second)
	for replicaB.post(t, "/v1/messages", b.sender, brandMessage()).Code != http.StatusUnprocessableEntity { // the broadcast is asynchronous
		if time.Now().After(deadline) {
			t.Fatal("replica B still sends from a name another project verified through replica A")
		}
		runtime.Gosched()
	}
}

// TestAllowedDomainYieldsToVerifiedOwner: a name in AllowedSenderDomains
// is sendable without registration (unsigned) only while no project has
// it verified: once project B verifies it, the default project's sends
// from it are refused (422 naming /from), even though a send had just
// cached it as sendable, while B sends from it.
func TestAllowedDomainYieldsToVerifiedOwner(t *testing.T) {
	engines(t, func(t *testing.T, engine string) {
		e := newDomainEnvWith(t, engine, []string{"relay.example"}, func(c *Config, _ *Deps) {
			c.AllowedSenderDomains = append(c.AllowedSenderDomains, brand)
		})
		a, b := e.defaultTenant(), e.tenant("tenant-b")
		if acc := e.send(t, a.sender, brandMessage()); len(acc.Warnings) != 0 {
			t.Errorf("send from an allowed domain warned: %v", acc.Warnings)
		}
		e.register(t, b, "tb", true)
		e.wantVerified(t, b)
		e.wantFromRefused(t, "/v1/messages", a.sender, brandMessage(), "/from", brand, "another project")
		e.wantFromRefused(t, "/v1/messages/batch", a.sender, map[string]any{"messages": []any{brandMessage()}},
			"/messages/0/from", brand, "another project")
		e.send(t, b.sender, brandMessage())
	})
}
