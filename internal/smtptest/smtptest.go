// Package smtptest is an in-process SMTP server (emersion/go-smtp) on
// 127.0.0.1:0 for tests and benchmarks: it records what it accepts, counts
// connections, and can be told to answer a transaction with any reply,
// drop the connection after the final dot, or stall there.
package smtptest

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted transaction.
type Message struct {
	From, To string
	Data     []byte
}

// Action is how the server answers one transaction after the final dot.
type Action struct {
	// Reply, when set, is the answer instead of 250.
	Reply *smtp.SMTPError
	// Drop closes the connection without answering.
	Drop bool
	// Stall never answers (until the server closes).
	Stall bool
}

// Decide picks the Action for a transaction; nil accepts everything.
type Decide func(from, to string, data []byte) Action

// Server is a running test SMTP server.
type Server struct {
	// Host and Port are where it listens (127.0.0.1, a free port).
	Host string
	Port int

	srv     *smtp.Server
	release chan struct{}
	once    sync.Once

	mu       sync.Mutex
	decide   Decide
	msgs     []Message
	conns    int
	received chan struct{}
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(decide Decide) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{release: make(chan struct{}), decide: decide, received: make(chan struct{}, 1<<16)}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "smtptest.localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.MaxRecipients = 100
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// SetDecide replaces the decision function.
func (s *Server) SetDecide(d Decide) {
	s.mu.Lock()
	s.decide = d
	s.mu.Unlock()
}

// Messages returns a copy of what was accepted, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Connections is the number of connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// WaitMessages blocks until at least n messages were accepted or the
// timeout passes, and reports whether n arrived.
func (s *Server) WaitMessages(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got := len(s.msgs)
		s.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-s.received:
		case <-deadline.C:
			return false
		}
	}
}

// Close stops the server and releases stalled transactions.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.release) })
	return s.srv.Close()
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.mu.Lock()
	b.s.conns++
	b.s.mu.Unlock()
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s        *Server
	conn     *smtp.Conn
	from, to string
}

func (ss *session) AuthMechanisms() []string { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = to
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	decide := ss.s.decide
	ss.s.mu.Unlock()
	act := Action{}
	if decide != nil {
		act = decide(ss.from, ss.to, data)
	}
	switch {
	case act.Drop:
		_ = ss.conn.Conn().Close()
		return errors.New("dropped")
	case act.Stall:
		<-ss.s.release
		return errors.New("stalled")
	case act.Reply != nil:
		return act.Reply
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, Message{From: ss.from, To: ss.to, Data: data})
	ss.s.mu.Unlock()
	select {
	case ss.s.received <- struct{}{}:
	default:
	}
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", "" }
func (ss *session) Logout() error { return nil }
