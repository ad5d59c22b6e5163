package mailbox

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Settings
		wantErr string // substring; empty means success
	}{
		{
			in:   "imaps://bounce%40example.com:p%40ss@mail.example.com/INBOX?processed=Processed&delete=false",
			want: Settings{Scheme: "imaps", Host: "mail.example.com", Port: 993, User: "bounce@example.com", Folder: "INBOX", Processed: "Processed", TLS: TLSImplicit, password: "p@ss"},
		},
		{
			in:   "imap://u:pw@mail.example.com:1143",
			want: Settings{Scheme: "imap", Host: "mail.example.com", Port: 1143, User: "u", Folder: "INBOX", TLS: TLSStartTLS, password: "pw"},
		},
		{
			in:   "imap://u:pw@127.0.0.1/Bounces/2026?tls=none",
			want: Settings{Scheme: "imap", Host: "127.0.0.1", Port: 143, User: "u", Folder: "Bounces/2026", TLS: TLSNone, password: "pw"},
		},
		{
			in:   "pop3s://u:pw@pop.example.com?delete=true",
			want: Settings{Scheme: "pop3s", Host: "pop.example.com", Port: 995, User: "u", Delete: true, TLS: TLSImplicit, password: "pw"},
		},
		{
			in:   "pop3://u:pw@[::1]:1110/?tls=none",
			want: Settings{Scheme: "pop3", Host: "::1", Port: 1110, User: "u", TLS: TLSNone, password: "pw"},
		},
		{
			in:   "POP3://u:pw@localhost?tls=starttls",
			want: Settings{Scheme: "pop3", Host: "localhost", Port: 110, User: "u", TLS: TLSStartTLS, password: "pw"},
		},
		{in: "imap://u:pw@mail.example.com?tls=none", wantErr: "only for loopback"},
		{in: "pop3://u:pw@10.0.0.1?tls=none", wantErr: "only for loopback"},
		{in: "imaps://u:pw@h?tls=none", wantErr: "implicit tls"},
		{in: "imap://u:pw@h?tls=maybe", wantErr: "not starttls or none"},
		{in: "smtp://u:pw@h", wantErr: "scheme"},
		{in: "imap://h/INBOX", wantErr: "user is missing"},
		{in: "imap://u@h", wantErr: "password is missing"},
		{in: "imap://u:pw@:143", wantErr: "host is missing"},
		{in: "imap://u:pw@h:0", wantErr: "port"},
		{in: "imap://u:pw@h?delete=yes please", wantErr: "delete"},
		{in: "imap://u:pw@h?processed=Done&delete=true", wantErr: "exclude"},
		{in: "imap://u:pw@h/INBOX?processed=INBOX", wantErr: "other than"},
		{in: "imap://u:pw@h?folder=x", wantErr: "unknown parameter"},
		{in: "imap://u:pw@h?delete=true&delete=false", wantErr: "2 times"},
		{in: "pop3://u:pw@h/INBOX", wantErr: "no folders"},
		{in: "pop3://u:pw@h?processed=Done", wantErr: "no folders"},
		{in: "imap://u:pw@h:99999", wantErr: "port"},
		{in: "imap://u:pw@h\x7f", wantErr: "malformed URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrBadURL) {
					t.Fatalf("error = %v, want ErrBadURL containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Settings{})); diff != "" {
				t.Errorf("ParseURL (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPasswordNeverPrinted: formatting Settings, Name and every parse
// error leave the password out.
func TestPasswordNeverPrinted(t *testing.T) {
	const pw = "Hunter2Secret"
	set, err := ParseURL("imaps://u:" + pw + "@h/INBOX")
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open("pop3s://u:"+pw+"@h", Config{})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"Name": set.Name(), "Source.Name": src.Name()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		outputs[verb] = fmt.Sprintf(verb, set)
	}
	for _, bad := range []string{
		"imaps://u:" + pw + "@h:port", "imaps://u:" + pw + "@h\x00", "ftp://u:" + pw + "@h",
		"imap://u:" + pw + "@example.com?tls=none", "imap://u:" + pw + "@h?x=1", "imap://u:" + pw + "@h/%zz",
		"imaps://u:" + pw + "/x@h/INBOX", "imaps://u:" + pw + "?x@h/INBOX", "imaps://u:12/" + pw + "@h/INBOX",
		"pop3s://u:12/" + pw + "@h", "imaps://u:12#" + pw + "@h",
	} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Fatalf("ParseURL(%q) succeeded", bad)
		}
		outputs["error of "+bad] = err.Error()
	}
	for what, out := range outputs {
		if strings.Contains(out, pw) {
			t.Errorf("%s contains the password: %s", what, out)
		}
	}
	if diff := cmp.Diff("imaps://u@h:993/INBOX", set.Name()); diff != "" {
		t.Errorf("Name (-want +got):\n%s", diff)
	}
}
