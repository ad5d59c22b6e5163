package main

import (
	"net/http/httptest"
	"testing"
)

// TestClientAddress: behind MAILGATE_TRUSTED_PROXIES the console's client
// is the nearest X-Forwarded-For address outside the trusted networks; a
// peer outside them is the client whatever header it sends (so nobody can
// take another address's sign-in attempts or escape the limit by naming
// one), and a loopback or private peer is not trusted unless listed.
func TestClientAddress(t *testing.T) {
	client, err := clientAddress([]string{"10.1.0.0/16", " 192.0.2.10/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ peer, xff, want string }{
		{"10.1.2.3:5555", "203.0.113.7", "203.0.113.7"},
		{"10.1.2.3:5555", "198.51.100.1, 203.0.113.7, 192.0.2.10", "203.0.113.7"},
		{"10.1.2.3:5555", "", "10.1.2.3"},
		{"203.0.113.9:5555", "198.51.100.1", "203.0.113.9"},
		{"127.0.0.1:5555", "198.51.100.1", "127.0.0.1"},
		{"10.2.0.1:5555", "198.51.100.1", "10.2.0.1"},
	} {
		r := httptest.NewRequest("POST", "/console/sign-in", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := client(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
	if f, err := clientAddress(nil); f != nil || err != nil {
		t.Errorf("unset: %v, %v; want the console's default", f != nil, err)
	}
	if _, err := clientAddress([]string{"10.0.0.1"}); err == nil {
		t.Error("an address without a prefix length was taken")
	}
}
