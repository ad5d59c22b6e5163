package mta

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"
)

// Pool sends through one upstream relay over at most MaxConns connections,
// reusing idle ones (LIFO). A connection whose last transaction ended with
// the reply to the final dot goes straight on to the next MAIL FROM; one
// left inside a transaction (a refused RCPT or DATA) is reset with RSET
// first. A reused connection the server closed while idle is noticed at
// MAIL FROM, before anything of the message was sent, and replaced. It is
// safe for concurrent use.
type Pool struct {
	cfg     RelayConfig
	t       Timeouts
	dial    dialFunc
	now     func() time.Time
	permits chan struct{} // one per connection in use; cap MaxConns

	mu     sync.Mutex
	idle   []*session
	closed bool
}

// PoolOption changes a Pool's dependencies.
type PoolOption func(*Pool)

// WithClock sets the clock used for idle expiry. Default time.Now.
// Network deadlines always use the wall clock.
func WithClock(now func() time.Time) PoolOption {
	return func(p *Pool) { p.now = now }
}

// WithDialer sets how TCP connections are opened. Default a net.Dialer.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) PoolOption {
	return func(p *Pool) { p.dial = dial }
}

// NewPool makes the pool of one relay. It connects lazily, on the first
// Send. It refuses an invalid configuration (see RelayConfig.Validate),
// such as tls=none on a host that is not loopback.
func NewPool(cfg RelayConfig, t Timeouts, opts ...PoolOption) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:     cfg,
		t:       t.withDefaults(),
		dial:    (&net.Dialer{}).DialContext,
		now:     time.Now,
		permits: make(chan struct{}, cfg.MaxConns),
	}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Name is the relay's name (RelayConfig.Name).
func (p *Pool) Name() string { return p.cfg.Name }

// Config is the relay's configuration with defaults applied.
func (p *Pool) Config() RelayConfig { return p.cfg }

// Send runs one SMTP transaction for env and msg (the signed message with
// CRLF line endings), msg preceded by the provider's header when the relay
// is a provider's (RelayConfig.Provider, Envelope.MailgateID). It returns
// nil when the relay answered 2xx to the final dot, else an *Error. A
// caller beyond MaxConns waits for a connection until ctx ends.
func (p *Pool) Send(ctx context.Context, env Envelope, msg []byte) error {
	_, err := p.SendReply(ctx, env, msg)
	return err
}

// SendReply is Send that also returns the text of the relay's 250 reply
// to the final dot (RFC 5321 §4.2; relays put their queue id there).
func (p *Pool) SendReply(ctx context.Context, env Envelope, msg []byte) (string, error) {
	if strings.ContainsAny(env.From+env.To, "\r\n<>") || env.To == "" {
		return "", &Error{Permanent: true, Text: "invalid envelope address"}
	}
	select {
	case p.permits <- struct{}{}:
	case <-ctx.Done():
		return "", &Error{Text: "wait for a connection: " + ctx.Err().Error(), Cause: ctx.Err()}
	}
	defer func() { <-p.permits }()
	head := feedbackHeader(p.cfg.Provider, env.MailgateID, msg)
	for {
		s, err := p.session(ctx)
		if err != nil {
			return "", err
		}
		reply, e := s.send(ctx, p.t, env, head, msg)
		p.release(s, e)
		switch {
		case e == nil:
			return reply, nil
		case e.stale:
			continue
		}
		return "", e
	}
}

// session returns an idle connection, reset when its last transaction was
// left open, or a new one.
func (p *Pool) session(ctx context.Context) (*session, *Error) {
	for {
		s, closed := p.popIdle()
		if closed {
			return nil, &Error{Text: "relay pool " + p.cfg.Name + " is closed"}
		}
		if s == nil {
			return dialSession(ctx, p.cfg, p.t, p.dial)
		}
		if p.now().Sub(s.lastUsed) > p.cfg.IdleTimeout {
			go s.quit()
			continue
		}
		stop := context.AfterFunc(ctx, func() { s.tc.Conn.Close() })
		err := s.reset(p.t)
		stop()
		if err != nil {
			s.c.Close()
			if ctx.Err() != nil {
				return nil, ctxError(ctx, "rset", err)
			}
			continue
		}
		return s, nil
	}
}

// popIdle takes the most recently used idle connection, if any.
func (p *Pool) popIdle() (*session, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, true
	}
	n := len(p.idle)
	if n == 0 {
		return nil, false
	}
	s := p.idle[n-1]
	p.idle = p.idle[:n-1]
	return s, false
}

// release keeps s for reuse unless it is broken (no reply, or 421 which
// closes the channel, RFC 5321 §3.8), used up, or the pool is closed. A
// Config error (SMTPUTF8 not offered) leaves the connection usable.
func (p *Pool) release(s *session, e *Error) {
	if e != nil && (e.stale || e.Code == 421 || (e.Code == 0 && !e.Config)) {
		s.c.Close()
		return
	}
	s.lastUsed = p.now()
	p.mu.Lock()
	keep := !p.closed && s.sent < p.cfg.MaxMessagesPerConn
	if keep {
		p.idle = append(p.idle, s)
	}
	p.mu.Unlock()
	if !keep {
		s.quit()
	}
}

// Close quits the idle connections; connections in use are closed when
// their transaction ends. Send fails after Close.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range idle {
		wg.Go(s.quit)
	}
	wg.Wait()
	return nil
}
