package inbound

import (
	"bytes"
	"context"
	"encoding/json"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/internal/dovecot"
	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/keyring"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/verp"
	"github.com/mailgate/mailgate/worker"
)

// sendRig is the sending half of mailgate on real parts: env's store and
// Redis, a worker.Deliverer relaying to an in-process SMTP sink, and the
// VERP codec shared with the poller (one keyring, as in one deployment).
type sendRig struct {
	e    *env
	sink *smtptest.Server
	d    *worker.Deliverer
}

func newSendRig(t *testing.T, e *env) *sendRig {
	t.Helper()
	kr, err := keyring.Generated()
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	e.codec = verp.New(kr, returnPathDomain)
	sink, err := smtptest.Start(nil) // accepts every transaction with 250
	if err != nil {
		t.Fatalf("smtp sink: %v", err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	to := 5 * time.Second
	pool, err := mta.NewPool(mta.RelayConfig{Name: "sink", Host: sink.Host, Port: sink.Port, TLS: mta.TLSNone, MaxConns: 2},
		mta.Timeouts{Connect: to, Greeting: to, Mail: to, Rcpt: to, DataInit: to, DataBlock: to, DataTerm: to})
	if err != nil {
		t.Fatalf("relay pool: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	limits := ratelimit.NewPolicy(ratelimit.PolicyConfig{Now: e.clock.Now},
		ratelimit.New(ratelimit.Config{Prefix: e.prefix + "rl:"}, e.rdb))
	// shop.example is not registered: allowed, it goes out unsigned, as
	// MAILGATE_ALLOWED_SENDER_DOMAINS lets it.
	d := worker.NewDeliverer(worker.DeliveryConfig{Now: e.clock.Now, AllowedSenderDomains: []string{"shop.example"}}, worker.DeliveryDeps{
		Store: e.store, Relay: mta.NewRelays([]*mta.Pool{pool}), Limits: limits,
		ReturnPath: e.codec, Keys: worker.NewStoreKeys(e.store, kr, 0, e.clock.Now),
		Signer: mta.NewSigner(mta.SignerConfig{}),
	})
	return &sendRig{e: e, sink: sink, d: d}
}

// request is the part of api.MessageRequest's wire form the test reads
// back to build the rows (the whole file is stored as the payload's
// request, its bodies beside it).
type request struct {
	From    string   `json:"from"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	HTML    string   `json:"html"`
}

// accept stores testdata/roundtrip/request.json as POST /v1/messages
// does: the request JSON as the payload, one queued row per recipient.
func (r *sendRig) accept(t *testing.T) string {
	t.Helper()
	payload := readRoundtrip(t, "request.json")
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		t.Fatalf("decode request: %v", err)
	}
	id := newMessageID(t)
	m := store.NewMessage{ID: id, ProjectID: store.DefaultProjectID, KeyID: "k1", From: req.From,
		FromDomain: "shop.example", Subject: req.Subject, Tags: []string{}, Metadata: map[string]string{},
		Payload: store.Payload{Request: payload, Text: req.Text, HTML: req.HTML}, CreatedAt: r.e.clock.Now()}
	for _, to := range req.To {
		m.Recipients = append(m.Recipients, store.NewRecipient{Email: to, Kind: store.KindTo, Status: store.StatusQueued})
	}
	if _, err := r.e.store.CreateMessages(context.Background(), []store.NewMessage{m}, nil); err != nil {
		t.Fatalf("create message: %v", err)
	}
	return id
}

// received is what the sink accepted for rcpt: the envelope sender and
// the header block (LF line ends), failing when there is not exactly one.
func (r *sendRig) received(t *testing.T, rcpt string) (envFrom, messageID, headers string) {
	t.Helper()
	var got []smtptest.Message
	for _, m := range r.sink.Messages() {
		if m.To == rcpt {
			got = append(got, m)
		}
	}
	if len(got) != 1 {
		t.Fatalf("sink received %d transactions for %s, want 1", len(got), rcpt)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatalf("parse sent message: %v", err)
	}
	head, _, ok := bytes.Cut(got[0].Data, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("sent message has no header/body separator")
	}
	return got[0].From, msg.Header.Get("Message-Id"), strings.ReplaceAll(string(head), "\r\n", "\n")
}

// newMessageID makes a message id as the API does (UUIDv7).
func newMessageID(t testing.TB) string {
	t.Helper()
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatalf("uuid: %v", err)
	}
	return u.String()
}

// readRoundtrip reads testdata/roundtrip/NAME.
func readRoundtrip(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "roundtrip", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// dsn fills testdata/roundtrip/dsn.eml: a Postfix-style RFC 3464 report
// to verpAddr about rcpt, returning headers as text/rfc822-headers.
func dsn(t testing.TB, verpAddr, rcpt, headers, dsnID string) []byte {
	t.Helper()
	tmpl := string(readRoundtrip(t, "dsn.eml"))
	r := strings.NewReplacer("{{VERP}}", verpAddr, "{{RCPT}}", rcpt, "{{HEADERS}}", strings.TrimRight(headers, "\n"),
		"{{DSN_ID}}", dsnID)
	return []byte(r.Replace(tmpl))
}

// forge changes the last character of the VERP token in addr (part of
// the MAC), keeping its shape.
func forge(t *testing.T, addr string) string {
	t.Helper()
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || !strings.HasPrefix(local, verp.Prefix) {
		t.Fatalf("not a VERP address: %q", addr)
	}
	last := local[len(local)-1]
	repl := byte('a')
	if last == 'a' {
		repl = 'b'
	}
	return local[:len(local)-1] + string(repl) + "@" + domain
}

// bounceEvent is the data of a message.bounced event the test checks.
type bounceEvent struct {
	Type          string `json:"type"`
	Status        string `json:"status"`
	Reason        string `json:"reason"`
	ReplyCode     int    `json:"reply_code"`
	Authenticated bool   `json:"authenticated"`
}

// TestRoundTripBounce sends a message to two recipients through the
// worker to an SMTP sink that accepts both, then bounces recipient #2 as
// the remote MX later would: an RFC 3464 report to the VERP envelope
// sender the sink saw, returning the sent headers, delivered into a real
// Dovecot and read by the poller over IMAP with STARTTLS. Exactly
// recipient #2 ends bounced and suppressed. Forged copies (one character
// of the token changed) change nothing and are listed as unmatched.
func TestRoundTripBounce(t *testing.T) {
	engines(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		r := newSendRig(t, e)
		id := r.accept(t)
		if err := r.d.Deliver(ctx, id, 0); err != nil {
			t.Fatalf("deliver: %v", err)
		}
		wantStatuses(t, e, id, store.StatusSent, store.StatusSent)
		bobVERP, msgID, headers := r.received(t, "bob@example.net")
		annVERP, _, annHeaders := r.received(t, "ann@example.org")
		if msgID != "<"+id+"@shop.example>" {
			t.Fatalf("sent Message-Id %q, want <%s@shop.example>", msgID, id)
		}

		srv := dovecot.Start(t)
		srv.Deliver(t, dsn(t, bobVERP, "bob@example.net", headers, "dsn1"))
		src := openDovecot(t, srv, "imap", "/INBOX", "processed=Processed")
		p := e.poller(Config{}, src)
		if n, err := p.Batch(ctx, src); err != nil || n != 1 {
			t.Fatalf("batch = %d, %v; want 1, nil", n, err)
		}
		checkBounced(t, e, id, srv)

		// The same report with the token forged, and one aimed at ann.
		srv.Deliver(t, dsn(t, forge(t, bobVERP), "bob@example.net", headers, "forged1"))
		srv.Deliver(t, dsn(t, forge(t, annVERP), "ann@example.org", annHeaders, "forged2"))
		drain(t, p, src, 2)
		checkBounced(t, e, id, srv)
		checkInbound(t, e, src.Name(), id)
	})
}

// drain waits for new mail as the poller's loop does (IMAP IDLE) and
// runs batches until want messages were handed over, failing after 20 s.
func drain(t *testing.T, p *Poller, src Source, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for got := 0; got < want; {
		if err := src.Wait(ctx); err != nil {
			t.Fatalf("wait for mail after %d of %d: %v", got, want, err)
		}
		n, err := p.Batch(ctx, src)
		if err != nil {
			t.Fatalf("batch: %v", err)
		}
		got += n
	}
}

// wantStatuses checks the recipients' statuses in order.
func wantStatuses(t *testing.T, e *env, id string, want ...string) {
	t.Helper()
	var got []string
	for i := range want {
		got = append(got, e.recipientStatus(id, i))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("recipient statuses (-want +got):\n%s", diff)
	}
}

// checkBounced asserts the state after bob's bounce: bob bounced with one
// hard message.bounced event and suppressed, ann untouched, and every
// report moved out of INBOX.
func checkBounced(t *testing.T, e *env, id string, srv *dovecot.Server) {
	t.Helper()
	wantStatuses(t, e, id, store.StatusSent, store.StatusBounced)
	evs := e.events(id)
	if len(evs) != 1 || !strings.HasPrefix(evs[0], store.EventBounced+" bob@example.net ") {
		t.Fatalf("events %q, want one message.bounced for bob@example.net", evs)
	}
	var got bounceEvent
	if err := json.Unmarshal([]byte(strings.SplitN(evs[0], " ", 3)[2]), &got); err != nil {
		t.Fatalf("event data: %v", err)
	}
	want := bounceEvent{Type: "hard", Status: "5.1.1", Reason: "userunknown", ReplyCode: 550, Authenticated: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bounce event (-want +got):\n%s", diff)
	}
	sup := map[string]string{"bob@example.net": e.suppression("bob@example.net"),
		"ann@example.org": e.suppression("ann@example.org")}
	if diff := cmp.Diff(map[string]string{"bob@example.net": store.ReasonHardBounce, "ann@example.org": ""}, sup); diff != "" {
		t.Errorf("suppressions (-want +got):\n%s", diff)
	}
	if in, done := srv.Count(t, "INBOX"), srv.Count(t, "Processed"); in != 0 || done < 1 {
		t.Errorf("INBOX holds %d, Processed %d; want every report moved", in, done)
	}
}

// checkInbound asserts the inbound rows: the real report matched to bob
// and authenticated, both forgeries unmatched.
func checkInbound(t *testing.T, e *env, mailbox, id string) {
	t.Helper()
	type row struct {
		Kind, MessageID, Recipient string
		Authenticated              bool
	}
	list := func(matched bool) []row {
		rows, _, err := e.store.ListInbound(context.Background(), store.InboundFilter{
			ProjectID: store.DefaultProjectID, IncludeUnmatched: true, Matched: &matched, Page: store.Page{Limit: 10}})
		if err != nil {
			t.Fatalf("list inbound: %v", err)
		}
		var out []row
		for _, in := range rows {
			if in.Mailbox != mailbox || in.Matched != matched {
				t.Errorf("row %+v listed under matched=%v", in, matched)
			}
			out = append(out, row{in.Kind, in.MessageID, in.Recipient, in.Authenticated})
		}
		return out
	}
	if diff := cmp.Diff([]row{{"bounce", id, "bob@example.net", true}}, list(true)); diff != "" {
		t.Errorf("matched inbound (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]row{{"bounce", "", "", false}, {"bounce", "", "", false}}, list(false)); diff != "" {
		t.Errorf("unmatched inbound (-want +got):\n%s", diff)
	}
}
