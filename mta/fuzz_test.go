package mta

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseRelayURL(f *testing.F) {
	for _, s := range []string{
		"smtp://user:pass@smtp.example.com:587?tls=starttls&max_conns=10&rate=100/s",
		"smtps://u%40x:p%2Cw@mx.example.com?name=a&auth=login",
		"smtp://127.0.0.1:2525?tls=none",
		"smtp://u:p@[::1]?tls=none&idle_timeout=1s",
		"smtp://u:p%zz@host",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseRelayURL(s)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		if cfg.TLS == TLSNone && !IsLoopbackHost(cfg.Host) {
			t.Fatalf("tls=none accepted for %q", cfg.Host)
		}
		if cfg.Password != "" && len(cfg.Password) > 3 && strings.Contains(cfg.String(), cfg.Password) && !strings.Contains(cfg.Host+cfg.Username+cfg.Rate, cfg.Password) {
			t.Fatalf("String() %q shows the password", cfg.String())
		}
	})
}

// FuzzBuild checks that any header text either is refused or yields a
// message with CRLF lines of at most 998 octets that parses back.
func FuzzBuild(f *testing.F) {
	f.Add("Your order #1234", "Bäckerei Müller", "café", "Rechnung März.pdf", "line\nline")
	f.Add(strings.Repeat("x", 998), strings.Repeat("é", 300), strings.Repeat("v", 998), strings.Repeat("ü", 200), strings.Repeat("y", 5000))
	f.Add("=?utf-8?q?x?=", "\"quoted\" <name>", "a\tb", "a\"b.pdf", "\r\n.\r\n")
	f.Fuzz(func(t *testing.T, subject, name, value, filename, text string) {
		m := baseMessage()
		m.Subject, m.From.Name, m.Text = subject, name, text
		m.Headers = map[string]string{"X-Value": value}
		m.Attachments = []Attachment{{Filename: filename, ContentType: "application/octet-stream", Content: []byte(text)}}
		raw, err := Build(m)
		if err != nil {
			if strings.ContainsAny(subject+name+value+filename, "\r\n\x00") || filename == "" {
				return
			}
			t.Fatalf("Build refused clean input: %v", err)
		}
		checkWireFormat(t, raw)
		root := parseMessage(t, raw)
		if got := root.tree(); got != "multipart/mixed[text/plain,application/octet-stream]" {
			t.Fatalf("structure %s", got)
		}
		if hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n")); bytes.Contains(bytes.ToLower(hdr), []byte("\nbcc:")) {
			t.Fatal("a Bcc field appeared")
		}
	})
}
