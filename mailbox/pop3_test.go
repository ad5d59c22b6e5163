package mailbox

import (
	"crypto/tls"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const fakePassword = "s3cret-Pa55"

// fakeURL is a pop3 URL for the fake server.
func fakeURL(f *fakePOP3, query string) string {
	u := "pop3://anna:" + fakePassword + "@" + f.addr
	if query != "" {
		u += "?" + query
	}
	return u
}

// TestPOP3RefusesPlaintext: with tls=starttls (the default) and no STLS,
// or an untrusted certificate, neither USER nor PASS is sent.
func TestPOP3RefusesPlaintext(t *testing.T) {
	cert := selfSigned(t)
	tests := []struct {
		name    string
		fake    *fakePOP3
		wantErr error
	}{
		{"capa without stls", &fakePOP3{caps: []string{"USER", "UIDL"}}, ErrNoTLS},
		{"no capa", &fakePOP3{}, ErrNoTLS},
		{"untrusted certificate", &fakePOP3{caps: []string{"STLS", "UIDL"}, cert: &cert}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake.start(t)
			src, err := Open(fakeURL(f, ""), Config{Log: testLog(t), TLSConfig: &tls.Config{}})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			_, err = src.Fetch(testCtx(t), 10, nil)
			if err == nil {
				t.Fatal("Fetch succeeded without TLS")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			var verr *tls.CertificateVerificationError
			if tt.fake.cert != nil && !errors.As(err, &verr) {
				t.Errorf("error = %v, want a certificate verification error", err)
			}
			if got := f.verbs(); slices.Contains(got, "USER") || slices.Contains(got, "PASS") {
				t.Errorf("commands %v include credentials", got)
			}
			if strings.Contains(err.Error(), fakePassword) {
				t.Errorf("error contains the password: %v", err)
			}
		})
	}
}

// TestPOP3Protocol covers RETR dot-unstuffing, long lines, truncation and
// malformed or missing responses against the fake on loopback (tls=none).
func TestPOP3Protocol(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	tests := []struct {
		name     string
		fake     *fakePOP3
		maxBytes int64
		want     []Message
		wantErr  error
	}{
		{
			name: "dot unstuffing",
			fake: &fakePOP3{messages: []string{"Subject: a\r\n\r\n..dot\r\n...\r\n..\r\nplain\r\n"}},
			want: []Message{{ID: "uid-1", Raw: []byte("Subject: a\r\n\r\n.dot\r\n..\r\n.\r\nplain\r\n")}},
		},
		{
			name: "line longer than the read buffer",
			fake: &fakePOP3{messages: []string{"Subject: b\r\n\r\n" + long + "\r\n..x\r\n"}},
			want: []Message{{ID: "uid-1", Raw: []byte("Subject: b\r\n\r\n" + long + "\r\n.x\r\n")}},
		},
		{
			name:     "truncated, session stays in sync",
			fake:     &fakePOP3{messages: []string{"Subject: c\r\n\r\n" + long + "\r\n", "Subject: d\r\n\r\n"}},
			maxBytes: 20,
			want: []Message{
				{ID: "uid-1", Raw: []byte("Subject: c\r\n\r\nxxxxxx")},
				{ID: "uid-2", Raw: []byte("Subject: d\r\n\r\n")},
			},
		},
		{name: "no uidl", fake: &fakePOP3{raw: map[string]string{"UIDL": "-ERR not here\r\n"}}, wantErr: ErrNoUIDL},
		{name: "bad greeting", fake: &fakePOP3{greeting: "HELLO"}, wantErr: errMalformed},
		{name: "bad uidl line", fake: &fakePOP3{raw: map[string]string{"UIDL": "+OK\r\nx y\r\n.\r\n"}}, wantErr: errMalformed},
		{name: "repeated uid", fake: &fakePOP3{raw: map[string]string{"UIDL": "+OK\r\n1 a\r\n2 a\r\n.\r\n"}}, wantErr: errMalformed},
		{name: "uid with space byte", fake: &fakePOP3{raw: map[string]string{"UIDL": "+OK\r\n1 \x01\r\n.\r\n"}}, wantErr: errMalformed},
		{name: "status line too long", fake: &fakePOP3{raw: map[string]string{"UIDL": "+OK " + long + "\r\n"}}, wantErr: errLineTooLong},
		{
			name:    "connection closed inside RETR",
			fake:    &fakePOP3{messages: []string{"x"}, raw: map[string]string{"RETR": "+OK\r\npartial"}, closeAfter: "RETR"},
			wantErr: io.ErrUnexpectedEOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake.start(t)
			src, err := Open(fakeURL(f, "tls=none"), Config{Log: testLog(t), MaxMessageBytes: tt.maxBytes, DialTimeout: 10e9})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			got, err := src.Fetch(testCtx(t), 10, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPOP3DeleteCommits: Done with delete=true sends DELE for known ids
// only and QUIT, which commits (RFC 1939 §6).
func TestPOP3DeleteCommits(t *testing.T) {
	f := (&fakePOP3{messages: []string{"a\r\n", "b\r\n"}}).start(t)
	src, err := Open(fakeURL(f, "tls=none&delete=true"), Config{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := testCtx(t)
	if _, err := src.Fetch(ctx, 10, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.Done(ctx, []string{"uid-2", "unknown"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"USER", "PASS", "UIDL", "LIST", "RETR", "RETR", "DELE", "QUIT"}
	if diff := cmp.Diff(want, f.verbs()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}
