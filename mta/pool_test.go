package mta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

// testTimeouts are generous: a test that waits for one of them sets that
// one short.
func testTimeouts() Timeouts {
	d := 10 * time.Second
	return Timeouts{Connect: d, Greeting: d, Mail: d, Rcpt: d, DataInit: d, DataBlock: d, DataTerm: d}
}

func newTestPool(t testing.TB, cfg RelayConfig, to Timeouts, opts ...PoolOption) *Pool {
	t.Helper()
	p, err := NewPool(cfg, to, opts...)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// outcome is the part of an *Error the tests compare.
type outcome struct {
	Permanent, Ambiguous, Config bool
	Code                         int
	Enhanced                     string
}

func outcomeOf(t *testing.T, err error) outcome {
	t.Helper()
	if err == nil {
		return outcome{Code: 250}
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not *mta.Error", err, err)
	}
	return outcome{Permanent: e.Permanent, Ambiguous: e.Ambiguous, Config: e.Config, Code: e.Code, Enhanced: e.Enhanced}
}

// waitStall waits until the server reports a stall at stage.
func waitStall(t *testing.T, s *testServer, stage string) {
	t.Helper()
	select {
	case got := <-s.stalls:
		if got != stage {
			t.Fatalf("server stalled at %q, want %q", got, stage)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server never stalled at %q", stage)
	}
}

var env = Envelope{From: "b+tok@bounce.example", To: "rcpt@example.org"}

func TestPoolSendFaults(t *testing.T) {
	short := 200 * time.Millisecond
	tests := []struct {
		name    string
		fault   fault
		opts    serverOptions
		timeout func(*Timeouts)
		msg     []byte
		want    outcome
	}{
		{name: "accepted", want: outcome{Code: 250}},
		{name: "421 at ehlo", fault: fault{stage: "ehlo", reply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "closing"}},
			want: outcome{Code: 421, Enhanced: "4.3.2"}},
		{name: "421 at mail", fault: fault{stage: "mail", reply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many"}},
			want: outcome{Code: 421, Enhanced: "4.7.0"}},
		{name: "451 at rcpt", fault: fault{stage: "rcpt", reply: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"}},
			want: outcome{Code: 451, Enhanced: "4.7.1"}},
		{name: "550 5.1.1 at rcpt", fault: fault{stage: "rcpt", reply: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
			want: outcome{Permanent: true, Code: 550, Enhanced: "5.1.1"}},
		{name: "552 after data", fault: fault{stage: "data", reply: &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "too big"}},
			want: outcome{Permanent: true, Code: 552, Enhanced: "5.3.4"}},
		{name: "552 from SIZE at mail", opts: serverOptions{maxBytes: 100}, msg: []byte(strings.Repeat("x", 500) + "\r\n"),
			want: outcome{Permanent: true, Code: 552, Enhanced: "5.3.4"}},
		{name: "stall at greeting", fault: fault{stage: "greeting", stall: true}, timeout: func(t *Timeouts) { t.Greeting = short },
			want: outcome{}},
		{name: "stall at rcpt", fault: fault{stage: "rcpt", stall: true}, timeout: func(t *Timeouts) { t.Rcpt = short },
			want: outcome{}},
		{name: "stall while the message is sent", fault: fault{stage: "data-body", stall: true}, timeout: func(t *Timeouts) { t.DataBlock = short },
			msg: bytes.Repeat([]byte(strings.Repeat("x", 78)+"\r\n"), 400_000), want: outcome{}},
		{name: "stall after final dot", fault: fault{stage: "data", stall: true}, timeout: func(t *Timeouts) { t.DataTerm = short },
			want: outcome{Ambiguous: true}},
		{name: "drop after final dot", fault: fault{stage: "data", drop: true},
			want: outcome{Ambiguous: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, tt.opts)
			s.setFault(tt.fault)
			to := testTimeouts()
			if tt.timeout != nil {
				tt.timeout(&to)
			}
			p := newTestPool(t, s.relay(TLSNone, nil), to)
			msg := tt.msg
			if msg == nil {
				msg = testMessage(tt.name)
			}
			err := p.Send(context.Background(), env, msg)
			if diff := cmp.Diff(tt.want, outcomeOf(t, err)); diff != "" {
				t.Errorf("outcome of %v (-want +got):\n%s", err, diff)
			}
			if tt.fault.stall {
				waitStall(t, s, tt.fault.stage)
			}
			wantMsgs := 0
			if err == nil {
				wantMsgs = 1
			}
			if got := len(s.messages()); got != wantMsgs {
				t.Errorf("server received %d messages, want %d", got, wantMsgs)
			}
		})
	}
}

func TestPoolSendDelivers(t *testing.T) {
	pki := newTestPKI(t)
	// big is several times the 64 KiB gathered into one write during DATA,
	// with lines that need dot-stuffing (RFC 5321 §4.5.2) across its pieces.
	var big bytes.Buffer
	big.WriteString("Subject: big\r\n\r\n")
	for i := 0; big.Len() < 300<<10; i++ {
		fmt.Fprintf(&big, ".line %d %s\r\n", i, strings.Repeat("x", i%900))
	}
	tests := []struct {
		name string
		tls  string
		msg  []byte
		want []byte
	}{
		{name: "last line without CRLF", tls: TLSNone,
			msg:  []byte("Subject: x\r\n\r\n.leading dot\r\nlast line without CRLF"),
			want: []byte("Subject: x\r\n\r\n.leading dot\r\nlast line without CRLF\r\n")},
		{name: "larger than one write", tls: TLSNone, msg: big.Bytes(), want: big.Bytes()},
		{name: "larger than one write over STARTTLS", tls: TLSStartTLS, msg: big.Bytes(), want: big.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := serverOptions{maxBytes: 1 << 20}
			if tt.tls != TLSNone {
				opts.tls, opts.cert = tt.tls, pki.cert
			}
			s := newTestServer(t, opts)
			p := newTestPool(t, s.relay(tt.tls, pki.roots), testTimeouts())
			for i := range 2 { // the second send reuses the connection
				if err := p.Send(context.Background(), env, tt.msg); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
			}
			got := s.messages()
			for i := range got {
				if !bytes.Equal(got[i].data, tt.want) {
					t.Errorf("message %d: server received %d bytes that differ from the %d sent", i, len(got[i].data), len(tt.want))
				}
				got[i].data = nil
			}
			want := received{from: env.From, to: env.To, size: int64(len(tt.msg)), tls: tt.tls != TLSNone}
			if diff := cmp.Diff([]received{want, want}, got, cmp.AllowUnexported(received{})); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
			if got := s.connections(); got != 1 {
				t.Errorf("server saw %d connections, want 1", got)
			}
		})
	}
}

// TestPoolReplacesConnectionClosedWhileIdle: the pool does not probe an
// idle connection before reusing it; a server that closed it meanwhile is
// found at MAIL FROM, before any of the message was sent, and the message
// goes out on a new connection without an error.
func TestPoolReplacesConnectionClosedWhileIdle(t *testing.T) {
	tests := []struct {
		name  string
		opts  serverOptions
		close func(s *testServer)
	}{
		{name: "421 idle timeout, then closed", opts: serverOptions{idleTimeout: 50 * time.Millisecond}},
		{name: "closed without a reply", close: (*testServer).dropAll},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, tt.opts)
			p := newTestPool(t, s.relay(TLSNone, nil), testTimeouts())
			if err := p.Send(context.Background(), env, testMessage("1")); err != nil {
				t.Fatalf("first Send: %v", err)
			}
			if tt.close != nil {
				tt.close(s)
			}
			s.waitClosed(t, 1)
			if err := p.Send(context.Background(), env, testMessage("2")); err != nil {
				t.Fatalf("Send after the server closed the idle connection: %v", err)
			}
			if got := len(s.messages()); got != 2 {
				t.Errorf("server received %d messages, want 2", got)
			}
			if got := s.connections(); got != 2 {
				t.Errorf("server saw %d connections, want 2", got)
			}
		})
	}
}

func TestPoolSMTPUTF8(t *testing.T) {
	utf8Env := Envelope{From: env.From, To: "jürgen@example.org"}
	t.Run("offered", func(t *testing.T) {
		s := newTestServer(t, serverOptions{smtputf8: true})
		p := newTestPool(t, s.relay(TLSNone, nil), testTimeouts())
		if err := p.Send(context.Background(), utf8Env, testMessage("u")); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if m := s.messages(); len(m) != 1 || !m[0].utf8 || m[0].to != utf8Env.To {
			t.Errorf("received %+v, want one SMTPUTF8 message to %s", m, utf8Env.To)
		}
	})
	t.Run("not offered", func(t *testing.T) {
		s := newTestServer(t, serverOptions{})
		p := newTestPool(t, s.relay(TLSNone, nil), testTimeouts())
		err := p.Send(context.Background(), utf8Env, testMessage("u"))
		want := outcome{Permanent: true, Config: true, Enhanced: "5.6.7"}
		if diff := cmp.Diff(want, outcomeOf(t, err)); diff != "" {
			t.Errorf("outcome of %v (-want +got):\n%s", err, diff)
		}
	})
}

func TestPoolReusesConnections(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	cfg := s.relay(TLSNone, nil)
	cfg.MaxConns = 2
	p := newTestPool(t, cfg, testTimeouts())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := w; i < 100; i += 8 {
				errs <- p.Send(context.Background(), env, testMessage(fmt.Sprint(i)))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if got := len(s.messages()); got != 100 {
		t.Errorf("server received %d messages, want 100", got)
	}
	if got := s.connections(); got < 1 || got > 2 {
		t.Errorf("server saw %d connections, want 1 or 2 (MaxConns=2)", got)
	}
}

func TestPoolConnectionLifecycle(t *testing.T) {
	drop := fault{stage: "data", drop: true}
	reply421 := fault{stage: "mail", reply: &smtp.SMTPError{Code: 421, Message: "bye"}}
	reply550 := fault{stage: "rcpt", reply: &smtp.SMTPError{Code: 550, Message: "no"}}
	tests := []struct {
		name      string
		first     fault         // fault for the first send only
		maxMsgs   int           // MaxMessagesPerConn
		advance   time.Duration // clock moves between sends
		sends     int
		wantConns int
	}{
		{name: "sequential sends share one connection", sends: 5, wantConns: 1},
		{name: "broken connection is not reused", first: drop, sends: 3, wantConns: 2},
		{name: "421 connection is not reused", first: reply421, sends: 3, wantConns: 2},
		{name: "550 at RCPT keeps the connection (RSET before the next MAIL)", first: reply550, sends: 3, wantConns: 1},
		{name: "max messages per connection", maxMsgs: 3, sends: 7, wantConns: 3},
		{name: "idle timeout", advance: time.Minute, sends: 3, wantConns: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, serverOptions{})
			cfg := s.relay(TLSNone, nil)
			cfg.MaxMessagesPerConn = tt.maxMsgs
			now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
			p := newTestPool(t, cfg, testTimeouts(), WithClock(func() time.Time { return now }))
			for i := 0; i < tt.sends; i++ {
				if i == 0 {
					s.setFault(tt.first)
				} else {
					s.setFault(fault{})
				}
				err := p.Send(context.Background(), env, testMessage(fmt.Sprint(i)))
				if i > 0 && err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				now = now.Add(tt.advance)
			}
			if got := s.connections(); got != tt.wantConns {
				t.Errorf("server saw %d connections, want %d", got, tt.wantConns)
			}
		})
	}
}

func TestPoolWaitsForAConnection(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	s.setFault(fault{stage: "rcpt", stall: true})
	cfg := s.relay(TLSNone, nil)
	cfg.MaxConns = 1
	p := newTestPool(t, cfg, testTimeouts())

	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- p.Send(ctx1, env, testMessage("1")) }()
	waitStall(t, s, "rcpt")

	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	err := p.Send(ctx2, env, testMessage("2"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Send = %v, want it to give up waiting with the context", err)
	}
	if got := s.connections(); got != 1 {
		t.Errorf("server saw %d connections, want 1 (MaxConns=1)", got)
	}
	cancel1()
	err = <-first
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Send = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(outcome{}, outcomeOf(t, err)); diff != "" {
		t.Errorf("cancelled outcome (-want +got):\n%s", diff)
	}
}

func TestPoolClosed(t *testing.T) {
	s := newTestServer(t, serverOptions{})
	p := newTestPool(t, s.relay(TLSNone, nil), testTimeouts())
	if err := p.Send(context.Background(), env, testMessage("1")); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.Send(context.Background(), env, testMessage("2")); err == nil {
		t.Fatal("Send after Close succeeded")
	}
}

func TestNewPoolRefusesPlaintextToRemoteHost(t *testing.T) {
	_, err := NewPool(RelayConfig{Host: "smtp.example.com", TLS: TLSNone}, Timeouts{})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("NewPool = %v, want the loopback rule", err)
	}
}
