package mta

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/mailpit"
)

// fault tells the test server how to misbehave at one stage.
type fault struct {
	// stage is "greeting" (stall only: the greeting never comes), "ehlo",
	// "mail", "rcpt", "data-body" (stall only: the message is not read) or
	// "data" (after the final dot was read).
	stage string
	// reply is the answer at that stage.
	reply *smtp.SMTPError
	// stall blocks at that stage until the test ends.
	stall bool
	// drop closes the connection without a reply (data stage).
	drop bool
}

// serverOptions shape the test server.
type serverOptions struct {
	// tls is "none" (default), "starttls" or "implicit".
	tls string
	// cert is the server certificate for starttls and implicit.
	cert tls.Certificate
	// users, when set, makes AUTH required with these user → password.
	users map[string]string
	// mechs are the AUTH mechanisms offered; default all four.
	mechs []string
	// maxBytes is the SIZE limit (0: none).
	maxBytes int64
	// smtputf8 offers SMTPUTF8.
	smtputf8 bool
	// idleTimeout, when set, makes the server answer 421 and close a
	// connection that stays silent that long (go-smtp's ReadTimeout).
	idleTimeout time.Duration
}

// received is one message accepted by the test server.
type received struct {
	from, to string
	data     []byte
	utf8     bool
	size     int64
	tls      bool
}

// testServer is an in-process go-smtp server on 127.0.0.1:0 that counts
// connections and AUTH attempts, records what it accepts, and injects
// faults.
type testServer struct {
	host    string
	port    int
	opts    serverOptions
	release chan struct{} // closed when the test ends: stalls return
	stalls  chan string   // a stage name each time a stall begins
	closed  chan struct{} // a value (never blocking) when closedN grows

	mu       sync.Mutex
	fault    fault
	conns    int
	open     []net.Conn // accepted connections, for dropAll
	auths    []string
	authOK   int
	received []received
	held     []net.Conn
	closedN  int // connections closed
}

func newTestServer(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &testServer{opts: opts, release: make(chan struct{}), stalls: make(chan string, 100),
		closed: make(chan struct{}, 1)}
	addr := ln.Addr().(*net.TCPAddr)
	s.host, s.port = addr.IP.String(), addr.Port
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.MaxMessageBytes = opts.maxBytes
	srv.EnableSMTPUTF8 = opts.smtputf8
	srv.ReadTimeout = opts.idleTimeout
	srv.AllowInsecureAuth = opts.tls == "" || opts.tls == "none"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	var l net.Listener = &countingListener{Listener: ln, s: s}
	switch opts.tls {
	case "starttls":
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{opts.cert}}
	case "implicit":
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{opts.cert}})
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() {
		close(s.release)
		srv.Close()
		<-done
		s.mu.Lock()
		held := s.held
		s.mu.Unlock()
		for _, c := range held { // not under mu: Close takes it
			c.Close()
		}
	})
	return s
}

// relay is a RelayConfig for this server.
func (s *testServer) relay(mode string, roots *x509.CertPool) RelayConfig {
	return RelayConfig{Name: "test", Host: s.host, Port: s.port, TLS: mode,
		TLSConfig: &tls.Config{RootCAs: roots}, HeloName: "client.test"}
}

func (s *testServer) setFault(f fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// faultAt is the fault for stage, if it is the configured one.
func (s *testServer) faultAt(stage string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.fault.stage == stage
}

// stall blocks until the test ends, announcing the stage first.
func (s *testServer) stall(stage string) {
	s.stalls <- stage
	<-s.release
}

// waitClosed waits until the server has closed (or seen closed) n
// connections.
func (s *testServer) waitClosed(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		done := s.closedN >= n
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-s.closed:
		case <-timeout:
			t.Fatal("the server never closed the connection")
		}
	}
}

// dropAll closes every accepted connection without a word, as a server
// restarting would.
func (s *testServer) dropAll() {
	s.mu.Lock()
	conns := s.open
	s.open = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (s *testServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *testServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

func (s *testServer) authAttempts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// countingListener counts accepted connections and holds them without a
// greeting when the "greeting" stage stalls.
type countingListener struct {
	net.Listener
	s *testServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c = &closeSignal{Conn: c, s: l.s}
		l.s.mu.Lock()
		l.s.conns++
		l.s.open = append(l.s.open, c)
		hold := l.s.fault.stage == "greeting"
		if hold {
			l.s.held = append(l.s.held, c)
		}
		l.s.mu.Unlock()
		if !hold {
			return c, nil
		}
		l.s.stalls <- "greeting"
	}
}

// closeSignal counts the first Close of a server connection and wakes a
// waitClosed. It never blocks: a benchmark closes thousands.
type closeSignal struct {
	net.Conn
	s    *testServer
	once sync.Once
}

func (c *closeSignal) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.closedN++
		c.s.mu.Unlock()
		select {
		case c.s.closed <- struct{}{}:
		default:
		}
	})
	return err
}

func (s *testServer) newSession(c *smtp.Conn) (smtp.Session, error) {
	if f, ok := s.faultAt("ehlo"); ok {
		if f.stall {
			s.stall("ehlo")
		}
		return nil, f.reply
	}
	return &testSession{s: s, conn: c}, nil
}

// testSession is one SMTP session of the test server.
type testSession struct {
	s      *testServer
	conn   *smtp.Conn
	authed bool
	from   string
	opts   *smtp.MailOptions
	to     string
}

func (ts *testSession) AuthMechanisms() []string {
	if ts.s.opts.users == nil {
		return nil
	}
	if ts.s.opts.mechs != nil {
		return ts.s.opts.mechs
	}
	return []string{AuthPlain, AuthLogin, AuthCRAMMD5, AuthXOAuth2}
}

func (ts *testSession) Auth(mech string) (sasl.Server, error) {
	ts.s.mu.Lock()
	ts.s.auths = append(ts.s.auths, mech)
	ts.s.mu.Unlock()
	check := func(user, pass string) error {
		if want, ok := ts.s.opts.users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		ts.authed = true
		ts.s.mu.Lock()
		ts.s.authOK++
		ts.s.mu.Unlock()
		return nil
	}
	switch mech {
	case AuthPlain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case AuthLogin:
		return &loginServer{check: check}, nil
	case AuthCRAMMD5:
		return &cramServer{users: ts.s.opts.users, check: check}, nil
	case AuthXOAuth2:
		return &xoauth2Server{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ts *testSession) Mail(from string, opts *smtp.MailOptions) error {
	if ts.s.opts.users != nil && !ts.authed {
		return smtp.ErrAuthRequired
	}
	if err := ts.fault("mail"); err != nil {
		return err
	}
	if ts.from != "" {
		// As Postfix does: a transaction is open (RFC 5321 §4.1.4: MAIL
		// only after RSET or the end of the previous transaction).
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "nested MAIL command"}
	}
	ts.from, ts.opts = from, opts
	return nil
}

func (ts *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ts.fault("rcpt"); err != nil {
		return err
	}
	ts.to = to
	return nil
}

func (ts *testSession) Data(r io.Reader) error {
	if f, ok := ts.s.faultAt("data-body"); ok && f.stall {
		ts.s.stall("data-body") // the client's writes block
		return errors.New("stalled")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if f, ok := ts.s.faultAt("data"); ok && f.drop {
		ts.conn.Conn().Close()
		return errors.New("dropped")
	}
	if err := ts.fault("data"); err != nil {
		return err
	}
	ts.s.mu.Lock()
	_, isTLS := ts.conn.TLSConnectionState()
	ts.s.received = append(ts.s.received, received{from: ts.from, to: ts.to, data: data, utf8: ts.opts.UTF8, size: ts.opts.Size, tls: isTLS})
	ts.s.mu.Unlock()
	return nil
}

// fault applies the configured fault of stage: a stall, then its reply.
func (ts *testSession) fault(stage string) error {
	f, ok := ts.s.faultAt(stage)
	if !ok {
		return nil
	}
	if f.stall {
		ts.s.stall(stage)
		return errors.New("stalled")
	}
	if f.reply != nil {
		return f.reply
	}
	return nil
}

func (ts *testSession) Reset()        { ts.from, ts.to = "", "" }
func (ts *testSession) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN: two prompts.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // initial response carries the user name
			l.user = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

// cramServer is the server side of CRAM-MD5 (RFC 2195).
type cramServer struct {
	users     map[string]string
	check     func(user, pass string) error
	challenge string
}

func (c *cramServer) Next(resp []byte) ([]byte, bool, error) {
	if c.challenge == "" {
		c.challenge = "<1896.697170952@sink.test>"
		return []byte(c.challenge), false, nil
	}
	user, digest, _ := strings.Cut(string(resp), " ")
	mac := hmac.New(md5.New, []byte(c.users[user]))
	mac.Write([]byte(c.challenge))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(digest)) {
		return nil, true, smtp.ErrAuthFailed
	}
	return nil, true, c.check(user, c.users[user])
}

// xoauth2Server is the server side of XOAUTH2; the token is the password.
type xoauth2Server struct {
	check func(user, pass string) error
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	fields := strings.Split(string(resp), "\x01")
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "user=") || !strings.HasPrefix(fields[1], "auth=Bearer ") {
		return nil, true, smtp.ErrAuthFailed
	}
	return nil, true, x.check(strings.TrimPrefix(fields[0], "user="), strings.TrimPrefix(fields[1], "auth=Bearer "))
}

// testPKI is a CA, a server certificate it signed for 127.0.0.1 and
// localhost, and a self-signed certificate nobody trusts.
type testPKI struct {
	roots   *x509.CertPool
	cert    tls.Certificate
	unknown tls.Certificate
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	p := mailpit.NewPKI(t)
	return testPKI{roots: p.Roots, cert: p.Cert, unknown: p.Unknown}
}

// testMessage is a small valid message with CRLF line endings.
func testMessage(id string) []byte {
	return []byte("From: a@shop.example\r\nTo: b@example.org\r\nSubject: " + id + "\r\n\r\nbody " + id + "\r\n")
}
