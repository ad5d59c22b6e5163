package mailbox

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
)

// openPOP3 dials and brings a session to the TRANSACTION state (RFC 1939
// §4): greeting, CAPA, STLS when configured, USER/PASS. With
// tls=starttls it refuses to continue, before sending USER, when STLS is
// not offered or the certificate does not verify.
func openPOP3(ctx context.Context, set Settings, cfg Config) (*pop3Conn, error) {
	conn, err := dial(ctx, set, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	p := newPOP3Conn(conn, cfg.DialTimeout)
	if err := p.authorize(ctx, set, cfg); err != nil {
		_ = conn.Close()
		return nil, ctxErr(ctx, err)
	}
	return p, nil
}

// authorize runs the AUTHORIZATION state.
func (p *pop3Conn) authorize(ctx context.Context, set Settings, cfg Config) error {
	if _, err := p.readStatus("greeting"); err != nil {
		return err
	}
	if set.TLS == TLSStartTLS {
		if err := p.startTLS(ctx, set, cfg); err != nil {
			return err
		}
	}
	if _, err := p.cmd("USER", "USER "+set.User); err != nil {
		return fmt.Errorf("login as %q: %w", set.User, err)
	}
	if _, err := p.cmd("PASS", "PASS "+set.secret()); err != nil {
		return fmt.Errorf("login as %q: %w", set.User, err)
	}
	return nil
}

// capa asks for capabilities (RFC 2449 §5); a server without CAPA answers
// -ERR, which yields none.
func (p *pop3Conn) capa() (map[string]string, error) {
	lines, err := p.multi("CAPA", "CAPA")
	if _, isERR := err.(*pop3Error); isERR {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseCapa(lines), nil
}

// startTLS upgrades with STLS (RFC 2595 §4) and verifies the certificate.
func (p *pop3Conn) startTLS(ctx context.Context, set Settings, cfg Config) error {
	caps, err := p.capa()
	if err != nil {
		return err
	}
	if _, ok := caps["STLS"]; !ok {
		return fmt.Errorf("pop3 STLS: %w", ErrNoTLS)
	}
	if _, err := p.cmd("STLS", "STLS"); err != nil {
		return err
	}
	if p.r.Buffered() > 0 { // data after +OK would be an injection (RFC 2595 §4)
		return fmt.Errorf("pop3 STLS: %w: data sent before the tls handshake", errMalformed)
	}
	tc := tls.Client(p.conn, cfg.tlsConfig(set.Host))
	hctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("pop3 STLS handshake: %w", err)
	}
	*p = *newPOP3Conn(tc, p.timeout)
	// RFC 2595 §4: forget capabilities learned before TLS.
	_, err = p.capa()
	return err
}

// uidl lists message numbers with unique ids; -ERR means the server lacks
// UIDL (RFC 1939 §7 makes it optional), which we cannot work without.
func (p *pop3Conn) uidl() ([]uidlEntry, error) {
	lines, err := p.multi("UIDL", "UIDL")
	if _, isERR := err.(*pop3Error); isERR {
		return nil, fmt.Errorf("%w: %v", ErrNoUIDL, err)
	}
	if err != nil {
		return nil, err
	}
	return parseUIDL(lines)
}

// list returns message sizes by number (RFC 1939 §5).
func (p *pop3Conn) list() (map[int]int64, error) {
	lines, err := p.multi("LIST", "LIST")
	if err != nil {
		return nil, err
	}
	return parseList(lines)
}

// retr downloads message n, keeping at most limit bytes (RFC 1939 §7).
func (p *pop3Conn) retr(n int, limit int64) ([]byte, bool, error) {
	if _, err := p.cmd("RETR", "RETR "+strconv.Itoa(n)); err != nil {
		return nil, false, err
	}
	return p.readMessage(limit)
}

// dele marks message n deleted; it is removed at QUIT (RFC 1939 §5, §6).
func (p *pop3Conn) dele(n int) error {
	_, err := p.cmd("DELE", "DELE "+strconv.Itoa(n))
	return err
}

// quit ends the session, committing deletions (UPDATE state, RFC 1939 §6).
func (p *pop3Conn) quit() error {
	_, err := p.cmd("QUIT", "QUIT")
	_ = p.conn.Close()
	return err
}
