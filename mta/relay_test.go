package mta

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseRelayURL(t *testing.T) {
	defaults := func(c RelayConfig) RelayConfig {
		if c.MaxConns == 0 {
			c.MaxConns = 10
		}
		if c.MaxMessagesPerConn == 0 {
			c.MaxMessagesPerConn = 100
		}
		if c.IdleTimeout == 0 {
			c.IdleTimeout = 30 * time.Second
		}
		if c.HeloName == "" {
			c.HeloName = "localhost"
		}
		if c.Provider == "" {
			c.Provider = ProviderNone
		}
		return c
	}
	tests := []struct {
		in      string
		want    RelayConfig
		wantErr string
	}{
		{in: "smtp://user:pass@smtp.example.com:587?tls=starttls&max_conns=5&rate=100/s",
			want: defaults(RelayConfig{Name: "smtp.example.com:587", Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS,
				Username: "user", Password: "pass", MaxConns: 5, Rate: "100/s"})},
		{in: "smtp://smtp.example.com?rate=10/s&rate=1000/h",
			want: defaults(RelayConfig{Name: "smtp.example.com:587", Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS,
				Rate: "10/s,1000/h"})},
		{in: "smtp://smtp.example.com",
			want: defaults(RelayConfig{Name: "smtp.example.com:587", Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS})},
		{in: "smtps://u%40x:p%2Cw%3A@mx.example.com?name=primary&auth=cram-md5&max_messages=7&idle_timeout=5s&helo=gw.example.com",
			want: defaults(RelayConfig{Name: "primary", Host: "mx.example.com", Port: 465, TLS: TLSImplicit, Username: "u@x", Password: "p,w:",
				AuthMechanism: AuthCRAMMD5, MaxMessagesPerConn: 7, IdleTimeout: 5 * time.Second, HeloName: "gw.example.com"})},
		{in: "smtp://127.0.0.1:2525?tls=none",
			want: defaults(RelayConfig{Name: "127.0.0.1:2525", Host: "127.0.0.1", Port: 2525, TLS: TLSNone})},
		{in: "smtp://localhost?tls=none",
			want: defaults(RelayConfig{Name: "localhost:25", Host: "localhost", Port: 25, TLS: TLSNone})},
		{in: "smtp://[::1]:1025?tls=none",
			want: defaults(RelayConfig{Name: "[::1]:1025", Host: "::1", Port: 1025, TLS: TLSNone})},
		{in: "smtp://u:hunter2@10.0.0.5:25?tls=none", wantErr: "loopback"},
		{in: "smtp://u:hunter2@smtp.example.com?tls=none", wantErr: "loopback"},
		{in: "smtp://u:hunter2@smtp.example.com?tls=maybe", wantErr: "starttls, implicit or none"},
		{in: "smtp://u:hunter2@smtp.example.com?max_conns=0", wantErr: "positive"},
		{in: "smtp://u:hunter2@smtp.example.com?colour=blue", wantErr: "unknown parameter"},
		{in: "smtp://u:hunter2@smtp.example.com?auth=digest-md5", wantErr: "auth mechanism"},
		{in: "http://u:hunter2@smtp.example.com", wantErr: "scheme"},
		{in: "smtp://u:hunter2%zz@smtp.example.com", wantErr: "malformed"},
		{in: "smtp://u:hunter2/x@smtp.example.com", wantErr: "smtp://u:xxxxx@smtp.example.com: malformed URL"},
		{in: "smtp://u:12/hunter2@smtp.example.com", wantErr: "ends early: percent-encode"},
		{in: "smtp://u:12#hunter2@smtp.example.com", wantErr: "ends early: percent-encode"},
		{in: "smtp://u:12?hunter2@smtp.example.com", wantErr: "ends early: percent-encode"},
		{in: "smtp://u:hunter2@smtp.example.com?colour=blue&tls=starttls", wantErr: "smtp://u:xxxxx@smtp.example.com?colour=blue"},
		{in: "smtp://u:hunter2@smtp.example.com:99999", wantErr: "port"},
		{in: "smtp://u:hunter2@:587", wantErr: "host is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRelayURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRelayURL: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(RelayConfig{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRelayConfigStringIsRedacted(t *testing.T) {
	cfg, err := ParseRelayURL("smtp://mailer:hunter2@smtp.example.com:587?max_conns=3&rate=10/s")
	if err != nil {
		t.Fatal(err)
	}
	want := "smtp://mailer@smtp.example.com:587?max_conns=3&rate=10%2Fs&tls=starttls"
	if got := cfg.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestParseRelayURLs(t *testing.T) {
	cfgs, err := ParseRelayURLs("smtp://a.example.com, smtps://b.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cfgs {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"a.example.com:587", "b.example.com:465"}, names); diff != "" {
		t.Errorf("relays (-want +got):\n%s", diff)
	}
	if _, err := ParseRelayURLs(" , "); err == nil {
		t.Error("empty list accepted")
	}
}
