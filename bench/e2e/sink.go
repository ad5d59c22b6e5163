package main

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a minimal SMTP server on 127.0.0.1 that accepts everything,
// keeps nothing but a count, and notes when the count reached a target.
// (internal/smtptest keeps every message in memory, too much for 20,000
// messages of 10 KB.)
type sink struct {
	srv      *smtp.Server
	addr     *net.TCPAddr
	received atomic.Int64
	bytes    atomic.Int64

	mu      sync.Mutex
	target  int64
	reached chan time.Time
	stop    func()
}

func startSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: ln.Addr().(*net.TCPAddr)}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.stop = func() { _ = s.srv.Close() }
	s.srv.Domain = "sink.localhost"
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 100
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// expect resets the count and returns a channel that gets the time the
// n-th message arrives.
func (s *sink) expect(n int64) <-chan time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received.Store(0)
	s.bytes.Store(0)
	s.target, s.reached = n, make(chan time.Time, 1)
	return s.reached
}

func (s *sink) accepted(size int64) {
	now := time.Now()
	s.bytes.Add(size)
	n := s.received.Add(1)
	s.mu.Lock()
	if n == s.target && s.reached != nil {
		s.reached <- now
	}
	s.mu.Unlock()
}

func (s *sink) close() { s.stop() }

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct{ s *sink }

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *sinkSession) Reset()                               {}
func (ss *sinkSession) Logout() error                        { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	ss.s.accepted(n)
	return nil
}
