package e2e

import (
	"bytes"
	"net/http"
	"net/mail"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestSignedRightAfterRegistration: serve on SQLite with shop.example
// allowed unregistered. Its first message goes out unsigned; the domain is
// then registered and a message sent at once is signed with both new keys
// (python3-dkim verifies them against the records the API answered); the
// domain deleted and registered again (new keys), the next message is
// signed with the new keys, not the deleted ones the worker used a moment
// before.
func TestSignedRightAfterRegistration(t *testing.T) {
	requirePythonDKIM(t)
	sink := startSink(t, nil)
	g := newGateway(t, testsvc.SQLiteURL(t), "MAILGATE_RELAYS="+relayURL(sink.Port, ""),
		"MAILGATE_ALLOWED_SENDER_DOMAINS=shop.example")
	token := g.createKey("messages:send", "domains")
	c := newClient(t, g.start("serve"), token)

	first := sendPlain(t, c, sink, 1)
	if sigs := dkimSignatures(t, first); sigs != 0 {
		t.Fatalf("the unregistered domain's message carries %d DKIM signatures, want none", sigs)
	}
	records := createDomain(t, c, "shop.example")
	checkSignatures(t, sendPlain(t, c, sink, 2).Data, records)

	c.do(http.MethodDelete, "/v1/domains/shop.example", nil, nil, http.StatusNoContent)
	records = createDomain(t, c, "shop.example")
	checkSignatures(t, sendPlain(t, c, sink, 3).Data, records)
}

// sendPlain sends a small message from shop.example and returns it as the
// sink received it, the nth message there.
func sendPlain(t *testing.T, c *client, sink *smtptest.Server, n int) smtptest.Message {
	t.Helper()
	c.do(http.MethodPost, "/v1/messages", map[string]any{"from": "Shop <orders@shop.example>",
		"to": []string{"ann@example.org"}, "subject": "Order", "text": "Thank you.\n"}, nil, http.StatusAccepted)
	if !sink.WaitMessages(n, 30*time.Second) {
		t.Fatalf("sink has %d messages, want %d", len(sink.Messages()), n)
	}
	return sink.Messages()[n-1]
}

// dkimSignatures counts a message's DKIM-Signature headers.
func dkimSignatures(t *testing.T, m smtptest.Message) int {
	t.Helper()
	parsed, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	return len(parsed.Header["Dkim-Signature"])
}
