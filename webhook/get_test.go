package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/mailgate/mailgate/webhook"
)

// TestGet: Get goes through the SSRF guard (loopback refused unless
// allowed), returns at most limit bytes of a 200 and refuses other answers
// and redirects.
func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cert.pem":
			_, _ = w.Write([]byte("-----BEGIN CERTIFICATE-----"))
		case "/moved":
			http.Redirect(w, r, "/cert.pem", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	strict := webhook.New(webhook.Config{AllowHTTP: true})
	defer strict.Close()
	if _, err := strict.Get(ctx, srv.URL+"/cert.pem", 1<<10); !errors.Is(err, webhook.ErrForbiddenAddress) {
		t.Errorf("guarded Get of loopback: %v, want refused", err)
	}
	open := webhook.New(webhook.Config{AllowHTTP: true,
		AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	defer open.Close()
	b, err := open.Get(ctx, srv.URL+"/cert.pem", 10)
	if err != nil || string(b) != "-----BEGI"+"N" {
		t.Errorf("Get = %q, %v; want the first 10 bytes", b, err)
	}
	for _, path := range []string{"/moved", "/missing"} {
		if _, err := open.Get(ctx, srv.URL+path, 1<<10); err == nil {
			t.Errorf("Get %s succeeded", path)
		}
	}
}
