package mailbox

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// fakePOP3 is a tiny scripted POP3 server on 127.0.0.1:0 for the cases a
// real Dovecot cannot show: no STLS, no UIDL, malformed or hostile
// responses. Real behaviour is tested against Dovecot.
type fakePOP3 struct {
	addr       string
	caps       []string          // CAPA lines; nil answers CAPA with -ERR
	cert       *tls.Certificate  // STLS offered and answered with this certificate
	messages   []string          // RETR bodies, already dot-stuffed, CRLF, without the final "."
	raw        map[string]string // a verb's whole answer, written verbatim
	greeting   string            // default "+OK fake ready"
	closeAfter string            // verb after whose answer the connection is closed

	mu       sync.Mutex
	commands []string // verbs received, in order
}

// start listens and serves connections until the test ends.
func (f *fakePOP3) start(t testing.TB) *fakePOP3 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	f.addr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(conn)
		}
	}()
	return f
}

// verbs returns the commands received so far.
func (f *fakePOP3) verbs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

// serve runs one session.
func (f *fakePOP3) serve(conn net.Conn) {
	defer func() { _ = conn.Close() }()
	greeting := f.greeting
	if greeting == "" {
		greeting = "+OK fake ready"
	}
	fmt.Fprintf(conn, "%s\r\n", greeting)
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		f.mu.Lock()
		f.commands = append(f.commands, verb)
		f.mu.Unlock()
		if verb == "STLS" && f.cert != nil {
			fmt.Fprint(conn, "+OK begin tls\r\n")
			tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{*f.cert}})
			if tc.Handshake() != nil {
				return
			}
			conn, r = tc, bufio.NewReader(tc)
			continue
		}
		fmt.Fprint(conn, f.answer(verb, arg))
		if verb == "QUIT" || verb == f.closeAfter {
			return
		}
	}
}

// answer is the response to one command.
func (f *fakePOP3) answer(verb, arg string) string {
	if resp, ok := f.raw[verb]; ok {
		return resp
	}
	switch verb {
	case "CAPA":
		if f.caps == nil {
			return "-ERR no capa\r\n"
		}
		return "+OK\r\n" + strings.Join(f.caps, "\r\n") + "\r\n.\r\n"
	case "USER", "PASS", "DELE", "QUIT", "NOOP":
		return "+OK\r\n"
	case "UIDL":
		return f.listing(func(i int, _ string) string { return fmt.Sprintf("uid-%d", i) })
	case "LIST":
		return f.listing(func(_ int, m string) string { return fmt.Sprint(len(m)) })
	case "RETR":
		var n int
		if _, err := fmt.Sscan(arg, &n); err != nil || n < 1 || n > len(f.messages) {
			return "-ERR no such message\r\n"
		}
		return "+OK\r\n" + f.messages[n-1] + ".\r\n"
	}
	return "-ERR unknown command\r\n"
}

// listing renders a UIDL or LIST response.
func (f *fakePOP3) listing(field func(i int, msg string) string) string {
	var b strings.Builder
	b.WriteString("+OK\r\n")
	for i, m := range f.messages {
		fmt.Fprintf(&b, "%d %s\r\n", i+1, field(i+1, m))
	}
	b.WriteString(".\r\n")
	return b.String()
}
