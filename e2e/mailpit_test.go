package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailpit"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestSendThroughMailpit: the gateway relays through a real external
// relay, Mailpit, that requires STARTTLS (its certificate from a test CA
// the gateway trusts through SSL_CERT_FILE) and AUTH (user and password
// in MAILGATE_RELAYS, the password with characters that need escaping).
// Mailpit receives both copies (to and Bcc) from the authenticated user,
// each with its VERP envelope, and both signatures verify with
// python3-dkim.
func TestSendThroughMailpit(t *testing.T) {
	requirePythonDKIM(t)
	pki := mailpit.NewPKI(t)
	const user, password = "gateway", "p@ss:w/rd,1"
	mp := mailpit.Start(t, pki.Cert, user, password)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The README's rule: percent-encode what the URL syntax would read
	// (here @ : / and the list separator ,).
	escaped := strings.NewReplacer("@", "%40", ":", "%3A", "/", "%2F", ",", "%2C").Replace(password)
	relay := "smtp://" + user + ":" + escaped + "@127.0.0.1:" + strconv.Itoa(mp.SMTPPort) + "?tls=starttls"
	g := newGateway(t, testsvc.SQLiteURL(t), "MAILGATE_RELAYS="+relay, "SSL_CERT_FILE="+caFile)
	token := g.createKey("messages:send", "messages:read", "domains")
	c := newClient(t, g.start("serve"), token)
	records := createDomain(t, c, "shop.example")

	var accepted struct {
		ID string `json:"id"`
	}
	c.do(http.MethodPost, "/v1/messages", richMessage(), &accepted, http.StatusAccepted)
	var got []mailpit.Message
	waitFor(t, 30*time.Second, "both copies at Mailpit", func() bool {
		msgs, err := mp.Messages()
		if err != nil {
			t.Fatal(err)
		}
		got = msgs
		return len(msgs) >= 2
	})
	if len(got) != 2 {
		t.Fatalf("Mailpit holds %d messages, want 2 (to + bcc)", len(got))
	}
	bcc := 0
	for _, m := range got {
		if m.Username != user {
			t.Errorf("message %s arrived as user %q, want %q (AUTH)", m.ID, m.Username, user)
		}
		if m.Subject != utf8Subject {
			t.Errorf("subject %q, want %q", m.Subject, utf8Subject)
		}
		bcc += len(m.Bcc)
		raw, err := mp.Raw(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Mailpit prepends trace headers (Received, Return-Path, and Bcc
		// naming an envelope-only recipient); what the gateway sent starts
		// at its first DKIM-Signature.
		start := bytes.Index(raw, []byte("DKIM-Signature:"))
		if start < 0 {
			t.Fatalf("message %s is not signed:\n%s", m.ID, raw)
		}
		raw = raw[start:]
		checkEnvelopeSender(t, m.ReturnPath)
		checkSignatures(t, raw, records)
		checkHeaders(t, raw, accepted.ID)
	}
	if bcc != 1 {
		t.Errorf("%d envelope-only (Bcc) recipients at Mailpit, want 1", bcc)
	}
}
