package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/smtptest"
)

// client talks to a gateway's API with one key.
type client struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client
}

func newClient(t *testing.T, p *process, token string) *client {
	return &client{t: t, base: p.base, token: token, http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends body (JSON-encoded when not nil), fails the test unless the
// answer has status want, and decodes the answer into out when not nil.
func (c *client) do(method, path string, body, out any, want int) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatalf("encode %s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// messageView is the part of a message (GET /v1/messages[/{id}]) the
// tests read.
type messageView struct {
	ID                 string `json:"id"`
	Status             string `json:"status"`
	PossiblyDuplicated bool   `json:"possibly_duplicated"`
	Recipients         []struct {
		Email  string `json:"email"`
		Kind   string `json:"kind"`
		Status string `json:"status"`
	} `json:"recipients"`
	Events []struct {
		Type      string `json:"type"`
		Recipient string `json:"recipient"`
	} `json:"events"`
}

// listMessages pages through GET /v1/messages with the given status.
func (c *client) listMessages(status string) []messageView {
	c.t.Helper()
	var all []messageView
	cursor := ""
	for {
		q := url.Values{"status": {status}, "limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Data       []messageView `json:"data"`
			NextCursor *string       `json:"next_cursor"`
		}
		c.do(http.MethodGet, "/v1/messages?"+q.Encode(), nil, &page, http.StatusOK)
		all = append(all, page.Data...)
		if page.NextCursor == nil || *page.NextCursor == "" {
			return all
		}
		cursor = *page.NextCursor
	}
}

// sendBatch posts messages through POST /v1/messages/batch (in requests
// of at most 100) and returns the accepted ids in order.
func (c *client) sendBatch(msgs []map[string]any) []string {
	c.t.Helper()
	var ids []string
	for start := 0; start < len(msgs); start += 100 {
		end := min(start+100, len(msgs))
		var out struct {
			Results []struct {
				Index int             `json:"index"`
				ID    string          `json:"id"`
				Error json.RawMessage `json:"error"`
			} `json:"results"`
		}
		c.do(http.MethodPost, "/v1/messages/batch", map[string]any{"messages": msgs[start:end]}, &out, http.StatusOK)
		for _, r := range out.Results {
			if r.ID == "" {
				c.t.Fatalf("batch item %d refused: %s", start+r.Index, r.Error)
			}
			ids = append(ids, r.ID)
		}
	}
	if len(ids) != len(msgs) {
		c.t.Fatalf("batch accepted %d of %d messages", len(ids), len(msgs))
	}
	return ids
}

// simpleMessage is a one-recipient message from an allowed (unsigned)
// sender domain.
func simpleMessage(i int) map[string]any {
	return map[string]any{
		"from":    "Shop <orders@allowed.example>",
		"to":      []string{"rcpt" + strconv.Itoa(i) + "@example.org"},
		"subject": "message " + strconv.Itoa(i),
		"text":    "hello number " + strconv.Itoa(i),
	}
}

// startSink runs an in-process SMTP sink on 127.0.0.1 for the test.
func startSink(t *testing.T, decide smtptest.Decide) *smtptest.Server {
	t.Helper()
	s, err := smtptest.Start(decide)
	if err != nil {
		t.Fatalf("start sink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// mailgateID is the X-Mailgate-ID header of a raw message.
func mailgateID(t *testing.T, data []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse received message: %v", err)
	}
	id := m.Header.Get("X-Mailgate-ID")
	if id == "" {
		t.Fatalf("received message without X-Mailgate-ID:\n%s", data)
	}
	return id
}

// copiesByID counts the sink's messages per X-Mailgate-ID.
func copiesByID(t *testing.T, msgs []smtptest.Message) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range msgs {
		out[mailgateID(t, m.Data)]++
	}
	return out
}

// arrivals records when the sink accepted each transaction: a Decide that
// notes the time and accepts.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *arrivals) decide(string, string, []byte) smtptest.Action {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
	return smtptest.Action{}
}

func (a *arrivals) snapshot() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times...)
}
