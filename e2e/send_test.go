package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

const pythonDKIM = "/usr/bin/python3"

// utf8Subject needs RFC 2047 encoding in the header.
const utf8Subject = "Ihre Bestellung – Größe ✓ 注文 #1234"

// TestSendSigned: serve on SQLite, a registered domain with the default
// dual keys, one message with an attachment, an inline image, a UTF-8
// subject and a Bcc recipient → both copies at the sink, both signatures
// verified by python3-dkim, VERP envelope, recipients sent, Bcc hidden.
func TestSendSigned(t *testing.T) {
	requirePythonDKIM(t)
	sink := startSink(t, nil)
	g := newGateway(t, testsvc.SQLiteURL(t), "MAILGATE_RELAYS="+relayURL(sink.Port, ""))
	token := g.createKey("messages:send", "messages:read", "domains")
	c := newClient(t, g.start("serve"), token)

	records := createDomain(t, c, "shop.example")
	var accepted struct {
		ID string `json:"id"`
	}
	c.do(http.MethodPost, "/v1/messages", richMessage(), &accepted, http.StatusAccepted)
	if !sink.WaitMessages(2, 30*time.Second) {
		t.Fatalf("sink has %d messages, want 2 (to + bcc)", len(sink.Messages()))
	}
	msgs := sink.Messages()
	for _, m := range msgs {
		checkEnvelope(t, m)
		checkSignatures(t, m.Data, records)
		checkHeaders(t, m.Data, accepted.ID)
	}
	gotTo := []string{msgs[0].To, msgs[1].To}
	sort.Strings(gotTo)
	if diff := cmp.Diff([]string{"ann@example.org", "hidden@example.net"}, gotTo); diff != "" {
		t.Errorf("envelope recipients (-want +got):\n%s", diff)
	}
	waitFor(t, 10*time.Second, "message status sent", func() bool {
		var m messageView
		c.do(http.MethodGet, "/v1/messages/"+accepted.ID, nil, &m, http.StatusOK)
		return m.Status == "sent"
	})
	checkMessageView(t, c, accepted.ID)
}

func requirePythonDKIM(t *testing.T) {
	t.Helper()
	if err := exec.Command(pythonDKIM, "-c", "import dkim, nacl").Run(); err != nil {
		testsvc.Missing(t, "python3-dkim and python3-nacl ("+pythonDKIM+")", err)
	}
}

// createDomain registers a domain (default algorithms) and returns its
// TXT records, name → value.
func createDomain(t *testing.T, c *client, name string) map[string]string {
	t.Helper()
	var d struct {
		DNSRecords []struct{ Type, Name, Value string } `json:"dns_records"`
	}
	c.do(http.MethodPost, "/v1/domains", map[string]any{"name": name}, &d, http.StatusCreated)
	out := map[string]string{}
	dkim := 0
	for _, r := range d.DNSRecords {
		if r.Type == "TXT" {
			out[strings.ToLower(r.Name)] = r.Value
		}
		if strings.Contains(r.Name, "._domainkey.") {
			dkim++
		}
	}
	if dkim != 2 {
		t.Fatalf("dns_records hold %d DKIM records, want 2 (RSA and Ed25519): %+v", dkim, d.DNSRecords)
	}
	return out
}

func richMessage() map[string]any {
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes for the inline part")
	pdf := []byte("%PDF-1.4\n% fake invoice\n" + strings.Repeat("line of the invoice\n", 200))
	return map[string]any{
		"from":    "Shop <orders@shop.example>",
		"to":      []string{"Ann Émilie <ann@example.org>"},
		"bcc":     []string{"hidden@example.net"},
		"subject": utf8Subject,
		"text":    "Danke für Ihre Bestellung.\n",
		"html":    `<p>Danke für Ihre Bestellung.</p><img src="cid:logo@shop.example">`,
		"headers": map[string]string{"X-Order": "1234"},
		"tags":    []string{"order"},
		"attachments": []map[string]string{
			{"filename": "Rechnung-Größe.pdf", "content_type": "application/pdf",
				"content": base64.StdEncoding.EncodeToString(pdf)},
			{"filename": "logo.png", "content_type": "image/png", "content_id": "logo@shop.example",
				"content": base64.StdEncoding.EncodeToString(png)},
		},
	}
}

// checkEnvelope: the envelope sender is the VERP address b+TOKEN@domain.
func checkEnvelope(t *testing.T, m smtptest.Message) {
	t.Helper()
	checkEnvelopeSender(t, m.From)
}

// checkEnvelopeSender fails unless from is a VERP address b+TOKEN@ the
// return-path domain.
func checkEnvelopeSender(t *testing.T, from string) {
	t.Helper()
	if !strings.HasPrefix(from, "b+") || !strings.HasSuffix(from, "@"+returnPathDomain) ||
		len(from) <= len("b+@"+returnPathDomain) {
		t.Errorf("envelope sender %q, want b+TOKEN@%s", from, returnPathDomain)
	}
}

// signatureResult is one line of verify_dkim.py's answer.
type signatureResult struct {
	D  string `json:"d"`
	S  string `json:"s"`
	A  string `json:"a"`
	OK bool   `json:"ok"`
}

// checkSignatures runs python3-dkim on the message with the domain's
// records supplied offline: an RSA and an Ed25519 signature, both good.
func checkSignatures(t *testing.T, data []byte, records map[string]string) {
	t.Helper()
	dir := t.TempDir()
	msgPath, recPath := filepath.Join(dir, "msg.eml"), filepath.Join(dir, "records.json")
	rec, _ := json.Marshal(records)
	if err := os.WriteFile(msgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recPath, rec, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(pythonDKIM, "testdata/verify_dkim.py", msgPath, recPath)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("verify_dkim.py: %v\n%s", err, stderr.String())
	}
	var got []signatureResult
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("verify_dkim.py output %q: %v", out, err)
	}
	for i := range got {
		got[i].S = "" // selectors are generated
	}
	sort.Slice(got, func(i, j int) bool { return got[i].A < got[j].A })
	want := []signatureResult{
		{D: "shop.example", A: "ed25519-sha256", OK: true},
		{D: "shop.example", A: "rsa-sha256", OK: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DKIM signatures (-want +got):\n%s\n%s", diff, stderr.String())
	}
}

// checkHeaders: Bcc appears in no header, the subject decodes to the
// UTF-8 original, the message carries its id and an inline part.
func checkHeaders(t *testing.T, data []byte, id string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	if bytes.Contains(bytes.ToLower(head), []byte("hidden@example.net")) || m.Header.Get("Bcc") != "" {
		t.Errorf("the Bcc recipient shows in the headers:\n%s", head)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != utf8Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", subject, err, utf8Subject)
	}
	if got := m.Header.Get("X-Mailgate-ID"); got != id {
		t.Errorf("X-Mailgate-ID %q, want %q", got, id)
	}
	body, _ := io.ReadAll(m.Body)
	for _, want := range []string{"multipart/related", "Content-Id: <logo@shop.example>", "application/pdf"} {
		if !bytes.Contains(bytes.ToLower(body), bytes.ToLower([]byte(want))) {
			t.Errorf("body lacks %q", want)
		}
	}
}

// checkMessageView: every recipient sent, one message.sent event each.
func checkMessageView(t *testing.T, c *client, id string) {
	t.Helper()
	var m messageView
	c.do(http.MethodGet, "/v1/messages/"+id, nil, &m, http.StatusOK)
	var got []string
	for _, r := range m.Recipients {
		got = append(got, r.Email+" "+r.Status)
	}
	sort.Strings(got)
	if diff := cmp.Diff([]string{"ann@example.org sent", "hidden@example.net sent"}, got); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	sent := 0
	for _, e := range m.Events {
		if e.Type == "message.sent" {
			sent++
		}
	}
	if sent != 2 || m.PossiblyDuplicated {
		t.Errorf("%d message.sent events (want 2), possibly_duplicated %v: %+v", sent, m.PossiblyDuplicated, m.Events)
	}
}
