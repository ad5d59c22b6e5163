package mta

import (
	"context"
	"net"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestRelaysFailover(t *testing.T) {
	tests := []struct {
		name      string
		first     fault
		down      bool // the first relay's port is closed
		wantRelay string
		want      outcome
		wantFirst int // messages received by the first relay
		wantNext  int // messages received by the second relay
	}{
		{name: "first relay down", down: true, wantRelay: "second", want: outcome{Code: 250}, wantNext: 1},
		{name: "first relay answers 421", first: fault{stage: "ehlo", reply: &smtp.SMTPError{Code: 421, Message: "busy"}},
			wantRelay: "second", want: outcome{Code: 250}, wantNext: 1},
		{name: "first relay accepts", wantRelay: "first", want: outcome{Code: 250}, wantFirst: 1},
		{name: "550 is final", first: fault{stage: "rcpt", reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "unknown"}},
			wantRelay: "first", want: outcome{Permanent: true, Code: 550, Enhanced: "5.1.1"}},
		{name: "451 is final", first: fault{stage: "mail", reply: &smtp.SMTPError{Code: 451, Message: "later"}},
			wantRelay: "first", want: outcome{Code: 451, Enhanced: "4.0.0"}},
		{name: "ambiguous is final", first: fault{stage: "data", drop: true},
			wantRelay: "first", want: outcome{Ambiguous: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := newTestServer(t, serverOptions{})
			first.setFault(tt.first)
			cfg1 := first.relay(TLSNone, nil)
			cfg1.Name = "first"
			if tt.down {
				cfg1.Port = closedPort(t)
			}
			next := newTestServer(t, serverOptions{})
			cfg2 := next.relay(TLSNone, nil)
			cfg2.Name = "second"
			r := NewRelays([]*Pool{newTestPool(t, cfg1, testTimeouts()), newTestPool(t, cfg2, testTimeouts())})
			name, err := r.Send(context.Background(), env, testMessage(tt.name))
			if name != tt.wantRelay {
				t.Errorf("relay = %q, want %q", name, tt.wantRelay)
			}
			if diff := cmp.Diff(tt.want, outcomeOf(t, err)); diff != "" {
				t.Errorf("outcome of %v (-want +got):\n%s", err, diff)
			}
			got := []int{len(first.messages()), len(next.messages())}
			if diff := cmp.Diff([]int{tt.wantFirst, tt.wantNext}, got); diff != "" {
				t.Errorf("messages per relay (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRelaysAllDown(t *testing.T) {
	var pools []*Pool
	for _, name := range []string{"a", "b"} {
		pools = append(pools, newTestPool(t, RelayConfig{Name: name, Host: "127.0.0.1", Port: closedPort(t), TLS: TLSNone}, testTimeouts()))
	}
	name, err := NewRelays(pools).Send(context.Background(), env, testMessage("x"))
	if name != "b" {
		t.Errorf("relay = %q, want the last one tried, b", name)
	}
	if diff := cmp.Diff(outcome{}, outcomeOf(t, err)); diff != "" {
		t.Errorf("outcome of %v (-want +got):\n%s", err, diff)
	}
}
