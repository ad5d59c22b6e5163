package redact

import (
	"errors"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"redis://:s3cret@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"smtp://ann:s3cret@relay.example:587?tls=starttls", "smtp://ann:xxxxx@relay.example:587?tls=starttls"},
		{"imaps://ann:s3/cr@et@imap.example/INBOX", "imaps://ann:xxxxx@imap.example/INBOX"},
		{"redis://u:12/s3cret@host", "redis://u:xxxxx@host"},
		{"redis-sentinel://:s3cret@h1:26379,h2:26379?master=m", "redis-sentinel://:xxxxx@h1:26379,h2:26379?master=m"},
		{"redis://ann@host:6379", "redis://ann@host:6379"},
		{"redis://host:6379/0", "redis://host:6379/0"},
		{"ann:s3cret@host", "(URL not shown: it may contain a password)"},
		{"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := URL(tc.in); got != tc.want {
				t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{"redis://u:s3cret@host:port", ErrMalformedURL},
		{"redis://u:s3cret/x@host", ErrMalformedURL},
		{"redis://u:12/s3cret@host/0", ErrUserinfoCut},
		{"redis://u:12#s3cret@host", ErrUserinfoCut},
		{"redis://u:12?s3cret@host", ErrUserinfoCut},
		{"redis://u:s3%2Fcret@host:6379/0", nil},
		{"redis://host:6379/0", nil},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			u, err := ParseURL(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseURL error %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
			if err == nil && u == nil {
				t.Error("no URL and no error")
			}
		})
	}
}
