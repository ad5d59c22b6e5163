package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/mailgate/mailgate/webhook"
)

// independentSignature computes a v1 signature by the Standard Webhooks
// rule itself: base64(HMAC-SHA256(key, "id.timestamp.body")).
func independentSignature(t *testing.T, secret, id string, ts time.Time, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, ts.Unix(), body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSign(t *testing.T) {
	old, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	current, _ := webhook.NewSecret()
	if !webhook.ValidSecret(old) || old == current {
		t.Fatalf("secrets %q, %q", old, current)
	}
	body := []byte(`{"type":"message.sent","timestamp":"2026-12-07T10:00:00Z","data":{}}`)
	ts := time.Now()
	sig, err := webhook.Sign([]string{current, old}, "evt_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	want := independentSignature(t, current, "evt_1", ts, body) + " " + independentSignature(t, old, "evt_1", ts, body)
	if sig != want {
		t.Fatalf("signature %q, want %q", sig, want)
	}
	headers, _ := webhook.Headers([]string{current, old}, "evt_1", ts, body)
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	for _, s := range []string{current, old} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("a receiver holding one of the secrets refuses the delivery: %v", err)
		}
	}
	other, _ := webhook.NewSecret()
	wh, _ := standardwebhooks.NewWebhook(other)
	if err := wh.Verify(body, h); err == nil {
		t.Error("a receiver with another secret accepts the delivery")
	}
	if err := wh.Verify(append(body, ' '), h); err == nil {
		t.Error("a changed body verifies")
	}
	for _, bad := range []string{"", "whsec_", "nope", "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if webhook.ValidSecret(bad) {
			t.Errorf("ValidSecret(%q) = true", bad)
		}
		if _, err := webhook.Sign([]string{bad}, "evt_1", ts, body); err == nil {
			t.Errorf("Sign with secret %q succeeded", bad)
		}
	}
}

// receiver is a real HTTP endpoint on loopback that verifies what it gets.
type receiver struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	got    []http.Header
	bodies [][]byte
	answer func(w http.ResponseWriter, req *http.Request)
}

func newReceiver(t *testing.T, secret string, answer func(w http.ResponseWriter, req *http.Request)) *receiver {
	r := &receiver{secret: secret, answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req.Header.Clone())
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		r.answer(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func loopbackClient(cfg webhook.Config) *webhook.Client {
	cfg.AllowedNetworks = append(cfg.AllowedNetworks, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	cfg.AllowHTTP = true
	return webhook.New(cfg)
}

func TestPostDelivers(t *testing.T) {
	secret, _ := webhook.NewSecret()
	r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	c := loopbackClient(webhook.Config{})
	defer c.Close()
	body := []byte(`{"type":"message.sent"}`)
	res := c.Post(context.Background(), r.URL+"/hooks", []string{secret}, "evt_7", time.Now(), body)
	if !res.OK() || res.StatusCode != http.StatusNoContent || res.Latency <= 0 {
		t.Fatalf("result %+v", res)
	}
	if len(r.got) != 1 || string(r.bodies[0]) != string(body) {
		t.Fatalf("receiver got %d deliveries: %q", len(r.got), r.bodies)
	}
	h := r.got[0]
	if h.Get("Content-Type") != "application/json" || h.Get("webhook-id") != "evt_7" {
		t.Errorf("headers %v", h)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(r.bodies[0], h); err != nil {
		t.Errorf("receiver cannot verify the delivery: %v", err)
	}
}

func TestPostFailures(t *testing.T) {
	secret, _ := webhook.NewSecret()
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	other := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter, req *http.Request)
		wantStatus int
		wantBody   string
	}{
		{name: "5xx", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "try later")
		}, wantStatus: 503, wantBody: "try later"},
		{name: "long body kept short", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, strings.Repeat("é", 100))
		}, wantStatus: 400, wantBody: strings.Repeat("é", 8)}, // 16 bytes kept
		{name: "redirect not followed", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Location", other.URL)
			w.WriteHeader(http.StatusFound)
		}, wantStatus: 302},
		{name: "no answer in time", answer: func(_ http.ResponseWriter, req *http.Request) {
			select { // until the client gives up, or the test ends
			case <-stall:
			case <-req.Context().Done():
			}
		}},
	}
	c := loopbackClient(webhook.Config{Timeout: 300 * time.Millisecond, MaxResponseBody: 17})
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, secret, tt.answer)
			res := c.Post(context.Background(), r.URL, []string{secret}, "evt_1", time.Now(), []byte(`{}`))
			if res.OK() || res.StatusCode != tt.wantStatus || res.Body != tt.wantBody {
				t.Fatalf("result %+v, want failed with %d %q", res, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if len(other.got) != 0 {
		t.Error("the redirect was followed")
	}
}

// TestGuard: without an allowed network, loopback is refused both as a
// literal address and as a name resolving to it, before any request; so
// are private, link-local and other non-public addresses, and http
// without AllowHTTP.
func TestGuard(t *testing.T) {
	secret, _ := webhook.NewSecret()
	r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	port := r.URL[strings.LastIndex(r.URL, ":")+1:]
	strict := webhook.New(webhook.Config{AllowHTTP: true})
	defer strict.Close()
	for _, u := range []string{r.URL, "http://localhost:" + port, "http://[::1]:" + port} {
		res := strict.Post(context.Background(), u, []string{secret}, "evt_1", time.Now(), []byte(`{}`))
		if !errors.Is(res.Err, webhook.ErrForbiddenAddress) {
			t.Errorf("post to %s: %v, want the SSRF guard's refusal", u, res.Err)
		}
		if u == "http://localhost:"+port && res.Err != nil && (strings.Contains(res.Err.Error(), "127.0.0.1") ||
			strings.Contains(res.Err.Error(), "::1")) {
			t.Errorf("the refusal of a host name tells its address: %v", res.Err)
		}
	}
	if len(r.got) != 0 {
		t.Fatalf("the guarded client reached the receiver %d times", len(r.got))
	}
	for _, u := range []string{"https://10.1.2.3/", "https://169.254.169.254/latest", "https://[fd00::1]/",
		"https://100.64.0.1/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/", "https://192.168.1.1/",
		"https://[::127.0.0.1]/", "https://[::ffff:0:10.0.0.1]/", "https://[fec0::1]/", "https://[64:ff9b::a00:1]/"} {
		if err := strict.CheckURL(u); !errors.Is(err, webhook.ErrForbiddenAddress) {
			t.Errorf("CheckURL(%s) = %v, want refused", u, err)
		}
	}
	httpsOnly := webhook.New(webhook.Config{})
	for _, u := range []string{"http://hooks.example.com/", "ftp://hooks.example.com/", "https:///nohost",
		"https://user:pw@hooks.example.com/", "://"} {
		if err := httpsOnly.CheckURL(u); !errors.Is(err, webhook.ErrBadURL) {
			t.Errorf("CheckURL(%s) = %v, want a bad URL", u, err)
		}
	}
	for _, u := range []string{"https://hooks.example.com/mailgate", "https://93.184.215.14:8443/x"} {
		if err := httpsOnly.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%s) = %v, want accepted", u, err)
		}
	}
}

// TestRefusal: the guard's decision on addresses, without dialling them.
func TestRefusal(t *testing.T) {
	tests := []struct{ addr, rule string }{
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:127.0.0.1", "loopback"},
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.254", "carrier-grade NAT"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.251", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "reserved"},
		{"240.0.0.1", "reserved"},
		{"192.0.2.7", "reserved"},
		{"2001:db8::1", "reserved"},
		{"64:ff9b::a00:1", "reserved"},
		{"0.1.2.3", "reserved"},
		{"93.184.215.14", ""},
		{"100.128.0.1", ""},
		{"2606:4700::1111", ""},
		{"::ffff:93.184.215.14", ""},
	}
	for _, tt := range tests {
		if got := webhook.Refusal(netip.MustParseAddr(tt.addr)); got != tt.rule {
			t.Errorf("Refusal(%s) = %q, want %q", tt.addr, got, tt.rule)
		}
	}
	// An allowed network exempts its addresses, as written or IPv4-mapped,
	// and nothing else.
	c := webhook.New(webhook.Config{AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	for u, ok := range map[string]bool{"https://10.1.2.3/": true, "https://[::ffff:10.1.2.3]/": true, "https://10.2.0.1/": false} {
		if err := c.CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%s) with 10.1.0.0/16 allowed = %v", u, err)
		}
	}
}
