package mta

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

func TestRelayProvider(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "smtp://u:p@smtp.postmarkapp.com:587", want: ProviderPostmark},
		{in: "smtp://u:p@smtp-broadcasts.postmarkapp.com", want: ProviderPostmark},
		{in: "smtp://apikey:p@smtp.sendgrid.net:587", want: ProviderSendGrid},
		{in: "smtps://u:p@smtp.mailgun.org", want: ProviderMailgun},
		{in: "smtp://u:p@SMTP.EU.Mailgun.Org.:587", want: ProviderMailgun},
		{in: "smtp://smtp.example.com", want: ProviderNone},
		{in: "smtp://mailgun.org.example.com", want: ProviderNone},
		{in: "smtp://notmailgun.org", want: ProviderNone},
		{in: "smtp://127.0.0.1:2525?tls=none&provider=Postmark", want: ProviderPostmark},
		{in: "smtp://relay.example.com?provider=mailgun", want: ProviderMailgun},
		{in: "smtp://smtp.sendgrid.net?provider=none", want: ProviderNone},
		{in: "smtp://u:hunter2@smtp.example.com?provider=ses", wantErr: "provider"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			cfg, err := ParseRelayURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error = %v, want one containing %q without the password", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Provider != tt.want {
				t.Errorf("provider %q, want %q", cfg.Provider, tt.want)
			}
		})
	}
}

// providerEcho is what each provider's notifications would carry as the
// mailgate id of a message received as raw, read the way the provider
// reads its header: Postmark's X-PM-Metadata-KEY fields, SendGrid's first
// X-SMTPAPI unique_args, Mailgun's X-Mailgun-Variables map.
func providerEcho(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if v := m.Header.Get("X-PM-Metadata-mailgate_id"); v != "" {
		out[ProviderPostmark] = v
	}
	if v := m.Header.Get("X-SMTPAPI"); v != "" {
		var api struct {
			UniqueArgs map[string]string `json:"unique_args"`
		}
		if err := json.Unmarshal([]byte(v), &api); err != nil {
			t.Fatalf("X-SMTPAPI %q: %v", v, err)
		}
		if id := api.UniqueArgs["mailgate_id"]; id != "" {
			out[ProviderSendGrid] = id
		}
	}
	for _, v := range m.Header["X-Mailgun-Variables"] {
		var vars map[string]any
		if err := json.Unmarshal([]byte(v), &vars); err != nil {
			t.Fatalf("X-Mailgun-Variables %q: %v", v, err)
		}
		if id, ok := vars["mailgate_id"].(string); ok {
			out[ProviderMailgun] = id
		}
	}
	return out
}

const providerTestID = "0193a5f2-6b1e-7c3d-8e4f-5a6b7c8d9e0f"

// signedForProvider is a built message with id providerTestID, signed
// with an RSA and an Ed25519 key; edit may change it before it is built.
func signedForProvider(t *testing.T, ks keySet, edit func(*Message)) []byte {
	t.Helper()
	m := baseMessage()
	m.ID = providerTestID
	m.From.Email = "info@xn--bckerei-mller-6ib.example"
	if edit != nil {
		edit(m)
	}
	raw, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := NewSigner(SignerConfig{}).Sign(raw, ks.keys)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestPoolProviderHeader: a relay of each provider receives the message
// with that provider's header naming the message's id, ahead of the
// signed message left as it was, whose DKIM signatures still verify; a
// relay of no provider receives the signed message alone.
func TestPoolProviderHeader(t *testing.T) {
	ks := newKeySet(t, "rsa", "ed25519")
	signed := signedForProvider(t, ks, nil)
	var got [][]byte
	for _, provider := range []string{ProviderPostmark, ProviderSendGrid, ProviderMailgun, ProviderNone} {
		s := newTestServer(t, serverOptions{})
		cfg := s.relay(TLSNone, nil)
		cfg.Provider = provider
		p := newTestPool(t, cfg, testTimeouts())
		e := env
		e.MailgateID = providerTestID
		if err := p.Send(context.Background(), e, signed); err != nil {
			t.Fatalf("%s: %v", provider, err)
		}
		msgs := s.messages()
		if len(msgs) != 1 {
			t.Fatalf("%s: server received %d messages", provider, len(msgs))
		}
		data := msgs[0].data
		want := map[string]string{}
		if provider != ProviderNone {
			want[provider] = providerTestID
		}
		if d := cmp.Diff(want, providerEcho(t, data)); d != "" {
			t.Errorf("%s: ids the providers would echo (-want +got):\n%s", provider, d)
		}
		head, ok := bytes.CutSuffix(data, signed)
		if lines := bytes.Count(head, []byte("\r\n")); !ok || (provider == ProviderNone) != (lines == 0) || lines > 1 {
			t.Errorf("%s: received %q\nwant one header field at most ahead of the signed message", provider, data)
		}
		if msgs[0].size != int64(len(data)) {
			t.Errorf("%s: SIZE=%d, the message has %d octets", provider, msgs[0].size, len(data))
		}
		for i, v := range verifyGo(t, data, ks.records) {
			h := strings.ToLower(strings.Join(v.HeaderKeys, ":"))
			if strings.Contains(h, "x-pm-") || strings.Contains(h, "x-smtpapi") || strings.Contains(h, "x-mailgun") {
				t.Errorf("%s: signature %d signs %v", provider, i, v.HeaderKeys)
			}
		}
		got = append(got, data)
	}
	for i, r := range verifyPython(t, ks.records, got...) {
		if len(r) != 2 || !r[0] || !r[1] {
			t.Errorf("python3-dkim: message %d: %v", i, r)
		}
	}
}

// TestPoolProviderHeaderByHost: a relay URL naming a provider's host, with
// no provider parameter, sends that provider's header (the connection is
// dialled to the loopback test server, over STARTTLS).
func TestPoolProviderHeaderByHost(t *testing.T) {
	pki := newTestPKI(t)
	s := newTestServer(t, serverOptions{tls: "starttls", cert: pki.cert, users: map[string]string{"apikey": "SG.x"}})
	cfg, err := ParseRelayURL("smtp://apikey:SG.x@smtp.sendgrid.net:587")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = &tls.Config{RootCAs: pki.roots, ServerName: "localhost"}
	var dialled string
	p := newTestPool(t, cfg, testTimeouts(), WithDialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialled = addr
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(s.host, strconv.Itoa(s.port)))
	}))
	e := env
	e.MailgateID = providerTestID
	if err := p.Send(context.Background(), e, testMessage("by host")); err != nil {
		t.Fatal(err)
	}
	if dialled != "smtp.sendgrid.net:587" {
		t.Errorf("dialled %q", dialled)
	}
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages", len(msgs))
	}
	if d := cmp.Diff(map[string]string{ProviderSendGrid: providerTestID}, providerEcho(t, msgs[0].data)); d != "" {
		t.Errorf("ids the providers would echo (-want +got):\n%s", d)
	}
}

// TestPoolProviderHeaderNotAdded: no header for a message without an id,
// an id that is not a plain token, or (SendGrid, which obeys only the
// first X-SMTPAPI) a message whose own headers carry an X-SMTPAPI, which
// reaches SendGrid as it was.
func TestPoolProviderHeaderNotAdded(t *testing.T) {
	ks := newKeySet(t, "ed25519")
	own := signedForProvider(t, ks, func(m *Message) {
		m.Headers = map[string]string{"x-smtpapi": `{"category":["orders"]}`}
	})
	plain := signedForProvider(t, ks, nil)
	tests := []struct {
		name, provider, id string
		msg                []byte
	}{
		{"no id", ProviderPostmark, "", plain},
		{"id with a quote", ProviderSendGrid, `a"b`, plain},
		{"id with a space", ProviderMailgun, "a b", plain},
		{"id too long for postmark", ProviderPostmark, strings.Repeat("a", 81), plain},
		{"own X-SMTPAPI", ProviderSendGrid, providerTestID, own},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, serverOptions{})
			cfg := s.relay(TLSNone, nil)
			cfg.Provider = tt.provider
			p := newTestPool(t, cfg, testTimeouts())
			e := env
			e.MailgateID = tt.id
			if err := p.Send(context.Background(), e, tt.msg); err != nil {
				t.Fatal(err)
			}
			msgs := s.messages()
			if len(msgs) != 1 {
				t.Fatalf("server received %d messages", len(msgs))
			}
			if !bytes.Equal(msgs[0].data, tt.msg) {
				t.Fatalf("the relay received %q, want the message unchanged", msgs[0].data)
			}
		})
	}
}

// TestRelaysProviderHeaderPerRelay: a message that fails over from a
// Postmark relay (421) to a Mailgun relay reaches the Mailgun relay with
// Mailgun's header only.
func TestRelaysProviderHeaderPerRelay(t *testing.T) {
	first := newTestServer(t, serverOptions{})
	first.setFault(fault{stage: "mail", reply: &smtp.SMTPError{Code: 421, Message: "busy"}})
	cfg1 := first.relay(TLSNone, nil)
	cfg1.Name, cfg1.Provider = "postmark", ProviderPostmark
	next := newTestServer(t, serverOptions{})
	cfg2 := next.relay(TLSNone, nil)
	cfg2.Name, cfg2.Provider = "mailgun", ProviderMailgun
	r := NewRelays([]*Pool{newTestPool(t, cfg1, testTimeouts()), newTestPool(t, cfg2, testTimeouts())})
	e := env
	e.MailgateID = providerTestID
	name, err := r.Send(context.Background(), e, testMessage("failover"))
	if err != nil || name != "mailgun" {
		t.Fatalf("sent through %q: %v", name, err)
	}
	msgs := next.messages()
	if len(first.messages()) != 0 || len(msgs) != 1 {
		t.Fatalf("messages per relay: %d, %d", len(first.messages()), len(msgs))
	}
	if d := cmp.Diff(map[string]string{ProviderMailgun: providerTestID}, providerEcho(t, msgs[0].data)); d != "" {
		t.Errorf("ids the providers would echo (-want +got):\n%s", d)
	}
}
