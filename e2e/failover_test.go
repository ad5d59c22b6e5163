package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestFailover: the first relay of MAILGATE_RELAYS is a closed loopback
// port; every message reaches the second, and each recipient ends sent.
func TestFailover(t *testing.T) {
	sink := startSink(t, nil)
	relays := relayURL(closedPort(t), "") + "," + relayURL(sink.Port, "")
	g := newGateway(t, testsvc.SQLiteURL(t), "MAILGATE_RELAYS="+relays,
		"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example")
	token := g.createKey("messages:send", "messages:read")
	c := newClient(t, g.start("serve"), token)

	const n = 5
	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = simpleMessage(i)
	}
	ids := c.sendBatch(msgs)
	if !sink.WaitMessages(n, 30*time.Second) {
		t.Fatalf("second relay got %d messages, want %d", len(sink.Messages()), n)
	}
	waitFor(t, 10*time.Second, "every message sent", func() bool {
		return len(c.listMessages("sent")) == n
	})
	copies := copiesByID(t, sink.Messages())
	for _, id := range ids {
		if copies[id] != 1 {
			t.Errorf("message %s arrived %d times, want 1", id, copies[id])
		}
	}
}

// TestStartTLSRefusedFailsOver: the first relay requires STARTTLS but does
// not offer it (the sink has no TLS), so nothing is sent there in
// plaintext; the second relay gets every message.
func TestStartTLSRefusedFailsOver(t *testing.T) {
	plain := startSink(t, nil)
	second := startSink(t, nil)
	relays := relayURL(plain.Port, "")
	relays = strings.Replace(relays, "tls=none", "tls=starttls", 1) + "," + relayURL(second.Port, "")
	g := newGateway(t, testsvc.SQLiteURL(t), "MAILGATE_RELAYS="+relays,
		"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example")
	token := g.createKey("messages:send", "messages:read")
	c := newClient(t, g.start("serve"), token)

	const n = 3
	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = simpleMessage(i)
	}
	c.sendBatch(msgs)
	if !second.WaitMessages(n, 30*time.Second) {
		t.Fatalf("second relay got %d messages, want %d", len(second.Messages()), n)
	}
	if got := len(plain.Messages()); got != 0 || plain.Connections() == 0 {
		t.Errorf("relay without STARTTLS: %d messages over %d connections, want 0 messages over ≥ 1 connection",
			got, plain.Connections())
	}
}
