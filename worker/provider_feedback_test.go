package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/feedback/feedbacktest"
	"github.com/mailgate/mailgate/inbound"
	"github.com/mailgate/mailgate/mta"
	"github.com/mailgate/mailgate/store"
)

// headerFields are the fields of a message's header section, unfolded,
// names as written (net/mail would canonicalize their case, which
// Postmark's metadata keys keep).
func headerFields(t *testing.T, raw []byte) [][2]string {
	t.Helper()
	head, _, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("message has no body separator")
	}
	var out [][2]string
	for _, line := range strings.Split(string(head), "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			out[len(out)-1][1] += line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		out = append(out, [2]string{name, strings.TrimSpace(value)})
	}
	return out
}

// bounceNotice is a verified bounce notification of provider about rcpt
// of the message the relay received as raw, built as the provider builds
// it from the header fields it reads: Postmark's X-PM-Metadata-KEY fields
// become Metadata, the unique_args of SendGrid's first X-SMTPAPI become
// top-level event fields, Mailgun's X-Mailgun-Variables maps become
// user-variables. providerMessageID is the message id the provider
// reports (SendGrid's smtp-id, Mailgun's message-id header).
func bounceNotice(t *testing.T, r *relaysRig, provider, rcpt string, raw []byte, providerMessageID string) []feedback.Event {
	t.Helper()
	fields := headerFields(t, raw)
	now := time.Now()
	var n feedback.Notification
	var err error
	switch provider {
	case mta.ProviderPostmark:
		meta := map[string]string{}
		for _, f := range fields {
			if len(f[0]) > len("X-PM-Metadata-") && strings.EqualFold(f[0][:len("X-PM-Metadata-")], "X-PM-Metadata-") {
				meta[f[0][len("X-PM-Metadata-"):]] = f[1]
			}
		}
		body, _ := json.Marshal(map[string]any{"RecordType": "Bounce", "ID": 4323372036854775001, "Type": "HardBounce",
			"TypeCode": 1, "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Email": rcpt, "Metadata": meta,
			"Details":   "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
			"BouncedAt": now.UTC().Format(time.RFC3339)})
		n, err = (&feedback.Postmark{Username: "u", Password: "p"}).Verify("u", "p", true, body)
	case mta.ProviderSendGrid:
		ev := map[string]any{"email": rcpt, "timestamp": now.Unix(), "event": "bounce", "type": "bounce",
			"status": "5.1.1", "reason": "550 5.1.1 unknown user", "sg_event_id": "sg-" + rcpt, "smtp-id": providerMessageID}
		for _, f := range fields {
			if strings.EqualFold(f[0], "X-SMTPAPI") {
				var api struct {
					UniqueArgs map[string]string `json:"unique_args"`
				}
				if err := json.Unmarshal([]byte(f[1]), &api); err != nil {
					t.Fatalf("X-SMTPAPI %q: %v", f[1], err)
				}
				for k, v := range api.UniqueArgs {
					ev[k] = v
				}
				break // SendGrid obeys the first X-SMTPAPI only
			}
		}
		body, _ := json.Marshal([]any{ev})
		sg, kerr := feedbacktest.NewSendGrid()
		if kerr != nil {
			t.Fatal(kerr)
		}
		sig, ts := sg.Sign(body, now)
		n, err = (&feedback.SendGrid{PublicKey: sg.PublicKey}).Verify(sig, ts, body)
	case mta.ProviderMailgun:
		vars := map[string]any{}
		for _, f := range fields {
			if strings.EqualFold(f[0], "X-Mailgun-Variables") {
				if err := json.Unmarshal([]byte(f[1]), &vars); err != nil {
					t.Fatalf("X-Mailgun-Variables %q: %v", f[1], err)
				}
			}
		}
		body, _ := json.Marshal(map[string]any{
			"signature": map[string]string{"timestamp": "TIMESTAMP", "token": "TOKEN", "signature": "SIGNATURE"},
			"event-data": map[string]any{"id": "mg-" + rcpt, "timestamp": now.Unix(), "event": "failed",
				"severity": "permanent", "recipient": rcpt,
				"delivery-status": map[string]any{"code": 550, "message": "5.1.1 unknown user"},
				"message":         map[string]any{"headers": map[string]string{"message-id": providerMessageID}},
				"user-variables":  vars}})
		const key = "key-0123456789abcdef0123456789abcdef"
		v := &feedback.Mailgun{SigningKey: key, Tokens: feedback.NewRedisTokens(r.rdb, "t:"+t.Name()+":"), Scope: "p"}
		n, err = v.Verify(context.Background(), feedbacktest.Mailgun(body, key, "token-"+rcpt, now))
	}
	if err != nil {
		t.Fatalf("%s notification: %v", provider, err)
	}
	return n.Events
}

// TestProviderFeedbackTiesToMessage: a message the worker sends through a
// relay of each provider carries what that provider echoes, so that a
// bounce notification built from the message the relay received ties to
// the message and bounces its recipient. The tie holds when the provider
// reports a message id of its own; the fallbacks by message id (SendGrid's
// smtp-id, Mailgun's echoed Message-ID) still tie a notification without
// the echoed id.
func TestProviderFeedbackTiesToMessage(t *testing.T) {
	for _, provider := range []string{mta.ProviderPostmark, mta.ProviderSendGrid, mta.ProviderMailgun} {
		t.Run(provider, func(t *testing.T) {
			rc := loopbackRelay(provider, 0)
			rc.Provider = provider
			r := newRelaysRig(t, []mta.RelayConfig{rc}, nil)
			rcpts := []string{"gone@example.net", "ok@example.net", "old@example.net"}
			id := r.accept(rcpts, nil, nil)
			ctx := context.Background()
			if err := r.d.Deliver(ctx, id, 0); err != nil {
				t.Fatal(err)
			}
			received := map[string][]byte{}
			for _, m := range r.sink.Messages() {
				received[m.To] = m.Data
			}
			if len(received) != 3 {
				t.Fatalf("sink received %d messages, want 3", len(received))
			}
			fb := inbound.NewFeedback(inbound.FeedbackConfig{Now: r.now}, r.st, nil)
			apply := func(events []feedback.Event) int {
				t.Helper()
				n, err := fb.Apply(ctx, provider, store.DefaultProjectID, events)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := apply(bounceNotice(t, r, provider, "gone@example.net", received["gone@example.net"],
				"<provider-own-id@"+provider+".example>")); n != 1 {
				t.Errorf("bounce by the echoed id applied %d changes, want 1", n)
			}
			want := map[string]string{"gone@example.net": store.StatusBounced, "ok@example.net": store.StatusSent,
				"old@example.net": store.StatusSent}
			if provider != mta.ProviderPostmark { // Postmark reports only its own MessageID
				m, err := mail.ReadMessage(bytes.NewReader(received["old@example.net"]))
				if err != nil {
					t.Fatal(err)
				}
				plain := withoutProviderHeader(t, received["old@example.net"])
				msgID := m.Header.Get("Message-ID")
				if provider == mta.ProviderMailgun {
					msgID = strings.Trim(msgID, "<>") // Mailgun echoes it without angle brackets
				}
				if n := apply(bounceNotice(t, r, provider, "old@example.net", plain, msgID)); n != 1 {
					t.Errorf("bounce by the Message-ID applied %d changes, want 1", n)
				}
				want["old@example.net"] = store.StatusBounced
			}
			got := map[string]string{}
			for _, rc := range r.message(id).Recipients {
				got[rc.Email] = rc.Status
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s: status %q, want %q", k, got[k], w)
				}
			}
		})
	}
}

// withoutProviderHeader is raw without its first header field, the one
// the relay added: the message as a relay of no provider received it.
func withoutProviderHeader(t *testing.T, raw []byte) []byte {
	t.Helper()
	first, rest, ok := bytes.Cut(raw, []byte("\r\n"))
	if !ok || !bytes.HasPrefix(first, []byte("X-")) {
		t.Fatalf("first field %q is not the provider's", first)
	}
	return rest
}
