package mta

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/internal/mailpit"
)

// TestMailpitRelay sends through a real external relay: Mailpit (a separate
// process, built by scripts/tools.sh) requiring STARTTLS (RFC 3207) and AUTH
// (RFC 4954), with a certificate for 127.0.0.1 issued by a test CA. What
// arrived is read back from Mailpit's HTTP API.
func TestMailpitRelay(t *testing.T) {
	pki := newTestPKI(t)
	const user, password = "relay-user", "Corr3ct-horse"
	mp := mailpit.Start(t, pki.cert, user, password)
	envs := []Envelope{
		{From: "b+tok1@bounces.example", To: "ann@example.org"},
		{From: "b+tok2@bounces.example", To: "carol@example.com"}, // a Bcc recipient
	}
	tests := []struct {
		name     string
		tls      string
		password string
		roots    *x509.CertPool
		want     outcome
		wantMail []mailpitDelivery
	}{
		{
			name: "delivered over STARTTLS with AUTH", tls: TLSStartTLS, password: password, roots: pki.roots,
			want: outcome{Code: 250},
			wantMail: []mailpitDelivery{
				{ReturnPath: "b+tok1@bounces.example", To: []string{"ann@example.org"}, Cc: []string{"bob@example.net"}, Username: user},
				{ReturnPath: "b+tok2@bounces.example", To: []string{"ann@example.org"}, Cc: []string{"bob@example.net"}, Bcc: []string{"carol@example.com"}, Username: user},
			},
		},
		{
			name: "wrong password", tls: TLSStartTLS, password: "wrong-Pa55", roots: pki.roots,
			want: outcome{Permanent: true, Config: true, Code: 535, Enhanced: "5.7.8"},
		},
		{
			name: "certificate from an unknown CA", tls: TLSStartTLS, password: password, roots: x509.NewCertPool(),
			want: outcome{Permanent: true, Config: true},
		},
		{
			name: "plaintext refused by the relay", tls: TLSNone, roots: pki.roots,
			want: outcome{Permanent: true, Code: 530, Enhanced: "5.7.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := RelayConfig{
				Host: "127.0.0.1", Port: mp.SMTPPort, TLS: tt.tls,
				TLSConfig: &tls.Config{RootCAs: tt.roots, MinVersion: tls.VersionTLS12},
			}
			if tt.password != "" {
				cfg.Username, cfg.Password = user, tt.password
			}
			p := newTestPool(t, cfg, testTimeouts())
			subject := "mailpit " + tt.name
			for _, e := range envs {
				err := p.Send(t.Context(), e, mailpitMessage(subject))
				if diff := cmp.Diff(tt.want, outcomeOf(t, err)); diff != "" {
					t.Fatalf("send to %s: outcome of %v (-want +got):\n%s", e.To, err, diff)
				}
				if err != nil && tt.password != "" && strings.Contains(err.Error(), tt.password) {
					t.Errorf("error %q contains the password", err)
				}
			}
			if diff := cmp.Diff(tt.wantMail, deliveries(t, mp, subject)); diff != "" {
				t.Errorf("messages at Mailpit (-want +got):\n%s", diff)
			}
		})
	}
}

// mailpitMessage is a message with To and Cc headers; the envelope decides
// who gets it.
func mailpitMessage(subject string) []byte {
	return []byte("From: Shop <orders@shop.example>\r\nTo: Ann <ann@example.org>\r\n" +
		"Cc: bob@example.net\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@shop.example>\r\n\r\nHello.\r\n")
}

// mailpitDelivery is what Mailpit recorded of one received message: the
// envelope sender, the header recipients, the envelope recipients not in the
// headers (Bcc) and the authenticated user.
type mailpitDelivery struct {
	ReturnPath  string
	To, Cc, Bcc []string
	Username    string
}

// deliveries lists the messages Mailpit holds with this subject, ordered
// by envelope sender.
func deliveries(t *testing.T, mp *mailpit.Server, subject string) []mailpitDelivery {
	t.Helper()
	msgs, err := mp.Messages()
	if err != nil {
		t.Fatal(err)
	}
	var got []mailpitDelivery
	for _, m := range msgs {
		if m.Subject == subject {
			got = append(got, mailpitDelivery{ReturnPath: m.ReturnPath, To: m.To, Cc: m.Cc, Bcc: m.Bcc, Username: m.Username})
		}
	}
	slices.SortFunc(got, func(a, b mailpitDelivery) int { return strings.Compare(a.ReturnPath, b.ReturnPath) })
	return got
}
