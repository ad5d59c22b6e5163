package mta

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// Envelope is the SMTP envelope of one transaction (RFC 5321 §2.3.1).
type Envelope struct {
	// From is the reverse-path (MAIL FROM), the VERP address; "" sends the
	// null reverse-path.
	From string
	// To is the one forward-path (RCPT TO) of this transaction.
	To string
	// SMTPUTF8 asks for RFC 6531 handling; it is also set automatically
	// when From or To is not ASCII. A relay that does not offer it refuses
	// the send with a Config error.
	SMTPUTF8 bool
	// Size is the SIZE= hint (RFC 1870) when the server offers SIZE;
	// 0 means the size of what is sent (msg and the provider header).
	Size int
	// MailgateID is the message's mailgate id. A relay whose Provider is
	// Postmark, SendGrid or Mailgun puts it in that provider's header,
	// prepended to msg, so that the provider's notifications name the
	// message; "" adds none.
	MailgateID string
}

// quitTimeout bounds QUIT, which nobody waits for.
const quitTimeout = 5 * time.Second

// session is one open, greeted and authenticated SMTP connection.
type session struct {
	c        *smtp.Client
	tc       *timedConn
	lastUsed time.Time
	sent     int // transactions attempted on this connection
	// open is true while a mail transaction may be open on the server: MAIL
	// was accepted and no reply to the final dot has come back since
	// (a refused RCPT or DATA). Such a connection needs RSET before the
	// next transaction (RFC 5321 §4.1.1.5); after the reply to the final
	// dot the server has already cleared its state (§4.1.1.4), so the next
	// MAIL may follow at once.
	open bool
}

// dialSession connects, greets, secures and authenticates per cfg. The
// connection is closed when ctx ends before the session is ready.
func dialSession(ctx context.Context, cfg RelayConfig, t Timeouts, dial dialFunc) (*session, *Error) {
	dctx, cancel := context.WithTimeout(ctx, t.Connect)
	raw, err := dial(dctx, "tcp", cfg.Addr())
	cancel()
	if err != nil {
		return nil, ctxError(ctx, "connect", err)
	}
	tc := &timedConn{Conn: raw, timeout: t.Greeting}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	s, e := openSession(ctx, cfg, tc)
	if e != nil {
		raw.Close()
		return nil, e
	}
	tc.timeout = t.Mail
	if err := s.auth(cfg); err != nil {
		s.c.Close()
		return nil, err
	}
	return s, nil
}

// openSession reads the greeting, says EHLO and sets up TLS per cfg.TLS.
func openSession(ctx context.Context, cfg RelayConfig, tc *timedConn) (*session, *Error) {
	s := &session{tc: tc}
	var err error
	switch cfg.TLS {
	case TLSImplicit:
		conn := tls.Client(tc, tlsConfig(cfg))
		tc.Conn.SetDeadline(time.Now().Add(tc.timeout))
		if err := conn.HandshakeContext(ctx); err != nil {
			return nil, tlsError(ctx, err)
		}
		s.c = smtp.NewClient(conn)
	case TLSStartTLS:
		// RFC 3207 §4: a client that requires TLS must not go on when
		// STARTTLS is not offered; go-smtp fails in that case.
		if s.c, err = smtp.NewClientStartTLS(tc, tlsConfig(cfg)); err != nil {
			return nil, tlsError(ctx, err)
		}
	default:
		s.c = smtp.NewClient(tc)
	}
	if err := s.c.Hello(cfg.HeloName); err != nil {
		s.c.Close()
		return nil, tlsError(ctx, err)
	}
	return s, nil
}

// tlsConfig is cfg.TLSConfig for this host, at least TLS 1.2 (RFC 8996).
func tlsConfig(cfg RelayConfig) *tls.Config {
	c := &tls.Config{}
	if cfg.TLSConfig != nil {
		c = cfg.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = cfg.Host
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// tlsError classifies a failure while greeting or securing the connection:
// a refused or unverifiable TLS is a Config error, a reply keeps its code,
// anything else is a network error.
func tlsError(ctx context.Context, err error) *Error {
	var cve *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &cve), errors.As(err, &hostErr), errors.As(err, &authErr), errors.As(err, &invalid):
		return configError("tls certificate does not verify", err)
	case strings.Contains(err.Error(), "doesn't support STARTTLS"):
		// Matched by text: go-smtp (v0.25) makes this error with errors.New
		// in NewClientStartTLS and exports no sentinel or type for it, nor
		// a way to start TLS on a client it did not make.
		return configError("relay does not offer STARTTLS (RFC 3207)", nil)
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return replyError(se)
	}
	return ctxError(ctx, "greeting", err)
}

// auth runs SMTP AUTH (RFC 4954) when a username is configured. The
// session is already TLS, or on loopback with tls=none.
func (s *session) auth(cfg RelayConfig) *Error {
	if cfg.Username == "" {
		return nil
	}
	mech := chooseAuth(cfg.AuthMechanism, s.c.SupportsAuth)
	if mech == "" {
		return configError(fmt.Sprintf("relay does not offer AUTH %s", orAny(cfg.AuthMechanism)), nil)
	}
	client, err := saslClient(mech, cfg.Username, cfg.Password)
	if err != nil {
		return configError("auth", err)
	}
	if err := s.c.Auth(client); err != nil {
		e := asError("auth "+mech, err)
		e.Config = e.Permanent
		return e
	}
	return nil
}

func orAny(mech string) string {
	if mech == "" {
		return "(PLAIN, LOGIN, CRAM-MD5 or XOAUTH2)"
	}
	return mech
}

// reset sends RSET (RFC 5321 §4.1.1.5) when the last transaction on the
// connection was left open. go-smtp says EHLO again after RSET.
func (s *session) reset(t Timeouts) error {
	if !s.open {
		return nil
	}
	s.tc.timeout = t.Mail
	if err := s.c.Reset(); err != nil {
		return err
	}
	s.open = false
	return nil
}

// send runs one transaction: MAIL, RCPT, DATA with head (header fields
// added for this relay, or nil) followed by msg. A cancelled ctx closes
// the connection.
func (s *session) send(ctx context.Context, t Timeouts, env Envelope, head, msg []byte) (string, *Error) {
	stop := context.AfterFunc(ctx, func() { s.tc.Conn.Close() })
	defer stop()
	s.sent++
	if err := s.mail(ctx, t, env, len(head)+len(msg)); err != nil {
		return "", err
	}
	s.open = true
	s.tc.timeout = t.Rcpt
	if err := s.c.Rcpt(env.To, nil); err != nil {
		return "", ctxError(ctx, "rcpt to", err)
	}
	return s.data(ctx, t, head, msg)
}

// mail sends MAIL FROM with SIZE (RFC 1870) and SMTPUTF8 (RFC 6531) when
// the server offers them. On a reused connection, a MAIL FROM that gets no
// reply or 421 is marked stale: the server had closed the connection
// while it was idle, and nothing of this message was sent.
func (s *session) mail(ctx context.Context, t Timeouts, env Envelope, n int) *Error {
	utf8 := env.SMTPUTF8 || !isASCII(env.From) || !isASCII(env.To)
	if ok, _ := s.c.Extension("SMTPUTF8"); utf8 && !ok {
		e := configError("relay does not offer SMTPUTF8 (RFC 6531 §3.4)", nil)
		e.Enhanced = "5.6.7"
		return e
	}
	opts := &smtp.MailOptions{UTF8: utf8, Size: int64(n)}
	if env.Size > 0 {
		opts.Size = int64(env.Size)
	}
	s.tc.timeout = t.Mail
	if err := s.c.Mail(env.From, opts); err != nil {
		e := ctxError(ctx, "mail from", err)
		e.stale = s.sent > 1 && (e.Code == 0 || e.Code == 421) && ctx.Err() == nil
		return e
	}
	return nil
}

// data sends DATA, head and the message and the final dot, and returns
// the text of the 250 reply (often the relay's queue id). A failure after
// the dot was written, with no reply, is Ambiguous (RFC 5321 §6.1
// duplicates).
func (s *session) data(ctx context.Context, t Timeouts, head, msg []byte) (string, *Error) {
	s.tc.timeout = t.DataInit
	w, err := s.c.Data()
	if err != nil {
		return "", ctxError(ctx, "data", err)
	}
	s.tc.startData(t.DataBlock)
	defer s.tc.endData()
	if len(head) > 0 {
		if _, err := w.Write(head); err != nil {
			return "", ctxError(ctx, "message data", err)
		}
	}
	if _, err := w.Write(msg); err != nil {
		return "", ctxError(ctx, "message data", err)
	}
	s.tc.timeout = t.DataTerm
	s.tc.writeErr = nil
	resp, err := w.CloseWithResponse()
	if err == nil {
		s.open = false
		return resp.StatusText, nil
	}
	e := ctxError(ctx, "end of data", err)
	if e.Code != 0 {
		s.open = false
	}
	if e.Code == 0 && s.tc.writeErr == nil {
		e.Ambiguous = true
	}
	return "", e
}

// quit ends the session politely (RFC 5321 §4.1.1.10) and closes it.
func (s *session) quit() {
	s.tc.timeout = quitTimeout
	if err := s.c.Quit(); err != nil {
		s.c.Close()
	}
}

// ctxError is asError, with the context's error as the cause when ctx
// ended (the connection was closed because of it).
func ctxError(ctx context.Context, step string, err error) *Error {
	e := asError(step, err)
	if e.Code == 0 && ctx.Err() != nil {
		e.Text = step + ": " + ctx.Err().Error()
		e.Cause = ctx.Err()
	}
	return e
}

// dialFunc opens the TCP connection (net.Dialer.DialContext by default).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
