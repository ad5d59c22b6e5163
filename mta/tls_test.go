package mta

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTLSModes(t *testing.T) {
	pki := newTestPKI(t)
	users := map[string]string{"user": "s3cret"}
	configErr := outcome{Permanent: true, Config: true}
	tests := []struct {
		name       string
		serverTLS  string
		serverCert bool // false: the untrusted self-signed certificate
		clientTLS  string
		want       outcome
	}{
		{name: "starttls with trusted certificate", serverTLS: "starttls", serverCert: true, clientTLS: TLSStartTLS, want: outcome{Code: 250}},
		{name: "implicit with trusted certificate", serverTLS: "implicit", serverCert: true, clientTLS: TLSImplicit, want: outcome{Code: 250}},
		{name: "starttls not offered", serverTLS: "none", clientTLS: TLSStartTLS, want: configErr},
		{name: "starttls with unknown certificate", serverTLS: "starttls", clientTLS: TLSStartTLS, want: configErr},
		{name: "implicit with unknown certificate", serverTLS: "implicit", clientTLS: TLSImplicit, want: configErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cert := pki.unknown
			if tt.serverCert {
				cert = pki.cert
			}
			s := newTestServer(t, serverOptions{tls: tt.serverTLS, cert: cert, users: users})
			cfg := s.relay(tt.clientTLS, pki.roots)
			cfg.Username, cfg.Password = "user", "s3cret"
			p := newTestPool(t, cfg, testTimeouts())
			err := p.Send(context.Background(), env, testMessage(tt.name))
			if diff := cmp.Diff(tt.want, outcomeOf(t, err)); diff != "" {
				t.Fatalf("outcome of %v (-want +got):\n%s", err, diff)
			}
			wantAuths := []string(nil)
			wantMsgs := 0
			if err == nil {
				wantAuths, wantMsgs = []string{AuthPlain}, 1
				if !s.messages()[0].tls {
					t.Error("message was not received over TLS")
				}
			}
			if diff := cmp.Diff(wantAuths, s.authAttempts()); diff != "" {
				t.Errorf("AUTH attempts (-want +got):\n%s", diff)
			}
			if got := len(s.messages()); got != wantMsgs {
				t.Errorf("server received %d messages, want %d", got, wantMsgs)
			}
		})
	}
}

func TestAuthMechanisms(t *testing.T) {
	pki := newTestPKI(t)
	users := map[string]string{"relay-user": "pa:ss wörd"}
	tests := []struct {
		name     string
		offered  []string
		force    string
		password string
		want     outcome
		wantMech string
	}{
		{name: "PLAIN", offered: []string{AuthPlain}, want: outcome{Code: 250}, wantMech: AuthPlain},
		{name: "LOGIN", offered: []string{AuthLogin}, want: outcome{Code: 250}, wantMech: AuthLogin},
		{name: "CRAM-MD5", offered: []string{AuthCRAMMD5}, want: outcome{Code: 250}, wantMech: AuthCRAMMD5},
		{name: "XOAUTH2", offered: []string{AuthXOAuth2}, want: outcome{Code: 250}, wantMech: AuthXOAuth2},
		{name: "auto prefers PLAIN", offered: []string{AuthCRAMMD5, AuthLogin, AuthPlain}, want: outcome{Code: 250}, wantMech: AuthPlain},
		{name: "forced CRAM-MD5", offered: []string{AuthPlain, AuthCRAMMD5}, force: AuthCRAMMD5, want: outcome{Code: 250}, wantMech: AuthCRAMMD5},
		{name: "forced mechanism not offered", offered: []string{AuthPlain}, force: AuthCRAMMD5, want: outcome{Permanent: true, Config: true}},
		{name: "wrong password", offered: []string{AuthPlain}, password: "wrong-Pa55", want: outcome{Permanent: true, Config: true, Code: 535, Enhanced: "5.7.8"}, wantMech: AuthPlain},
		{name: "wrong password CRAM-MD5", offered: []string{AuthCRAMMD5}, password: "wrong-Pa55", want: outcome{Permanent: true, Config: true, Code: 535, Enhanced: "5.7.8"}, wantMech: AuthCRAMMD5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, serverOptions{tls: "starttls", cert: pki.cert, users: users, mechs: tt.offered})
			cfg := s.relay(TLSStartTLS, pki.roots)
			cfg.Username, cfg.Password, cfg.AuthMechanism = "relay-user", users["relay-user"], tt.force
			if tt.password != "" {
				cfg.Password = tt.password
			}
			p := newTestPool(t, cfg, testTimeouts())
			err := p.Send(context.Background(), env, testMessage(tt.name))
			if diff := cmp.Diff(tt.want, outcomeOf(t, err)); diff != "" {
				t.Fatalf("outcome of %v (-want +got):\n%s", err, diff)
			}
			if err != nil && strings.Contains(err.Error(), cfg.Password) {
				t.Errorf("error %q contains the password", err)
			}
			var wantAuths []string
			if tt.wantMech != "" {
				wantAuths = []string{tt.wantMech}
			}
			if diff := cmp.Diff(wantAuths, s.authAttempts()); diff != "" {
				t.Errorf("AUTH attempts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuthOverPlaintextLoopback(t *testing.T) {
	s := newTestServer(t, serverOptions{users: map[string]string{"u": "p"}})
	cfg := s.relay(TLSNone, nil)
	cfg.Username, cfg.Password = "u", "p"
	p := newTestPool(t, cfg, testTimeouts())
	if err := p.Send(context.Background(), env, testMessage("plain")); err != nil {
		t.Fatalf("Send: %v", err)
	}
}
