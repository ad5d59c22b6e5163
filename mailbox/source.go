package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// Message is one message of a mailbox.
type Message struct {
	// ID is stable and unique within the mailbox: IMAP "<uidvalidity>:<uid>"
	// (RFC 3501 §2.3.1.1; a new UIDVALIDITY changes every id), POP3 the
	// UIDL (RFC 1939 §7).
	ID string
	// Raw is the message as stored, CRLF line endings, at most
	// Config.MaxMessageBytes long (longer messages are truncated).
	Raw []byte
}

// Config configures a Source. Zero fields take the documented defaults.
type Config struct {
	// PollInterval is how often to look when IDLE is not available (POP3
	// always). Default 30s.
	PollInterval time.Duration
	// IdleTimeout is how long one IMAP IDLE lasts before Wait returns so the
	// caller looks again and IDLE is re-issued, below RFC 2177's 29 minutes.
	// Default 25m.
	IdleTimeout time.Duration
	// MaxMessageBytes bounds a downloaded message: IMAP fetches only the
	// first N bytes (BODY.PEEK[]<0.N>), POP3 reads RETR to the end and keeps
	// the first N bytes; a truncation is logged. Default 25 MiB.
	MaxMessageBytes int64
	// DialTimeout bounds connecting, the TLS handshake and greeting. Default 30s.
	DialTimeout time.Duration
	// TLSConfig is cloned for every connection (tests inject RootCAs);
	// ServerName is set from the host when empty. Default: system roots.
	TLSConfig *tls.Config
	// Log receives connection and truncation notes. Default slog.Default().
	Log *slog.Logger
}

// Defaults of Config's zero fields.
const (
	DefaultPollInterval    = 30 * time.Second
	DefaultIdleTimeout     = 25 * time.Minute
	DefaultMaxMessageBytes = 25 << 20
	DefaultDialTimeout     = 30 * time.Second
	// DefaultFetchMax is used when Fetch is called with max <= 0.
	DefaultFetchMax = 100
)

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// tlsConfig returns a clone of the configured TLS settings for host.
func (c Config) tlsConfig(host string) *tls.Config {
	var t *tls.Config
	if c.TLSConfig != nil {
		t = c.TLSConfig.Clone()
	} else {
		t = &tls.Config{}
	}
	if t.ServerName == "" {
		t.ServerName = host
	}
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	return t
}

// Source is one mailbox.
type Source interface {
	// Name labels the mailbox in metrics and locks:
	// scheme://user@host:port/folder, never the password.
	Name() string
	// Fetch returns up to max messages (DefaultFetchMax when max <= 0) the
	// caller has not processed, oldest first; skip(id) reports ids it
	// already processed (the caller remembers them durably), which are
	// neither downloaded nor returned. skip may be nil.
	Fetch(ctx context.Context, max int, skip func(id string) bool) ([]Message, error)
	// Done acknowledges processed messages: IMAP sets \Seen and, when a
	// processed folder is configured, MOVEs them there (RFC 6851; COPY,
	// STORE \Deleted and EXPUNGE if MOVE is not offered); POP3 DELEs them
	// only when delete=true, otherwise does nothing (the caller's memory of
	// UIDLs is what counts). IMAP deletes only when delete=true. Ids from an
	// earlier UIDVALIDITY or no longer present are ignored.
	Done(ctx context.Context, ids []string) error
	// Wait blocks until new mail may have arrived: IMAP IDLE (RFC 2177) when
	// offered, at most IdleTimeout, else PollInterval; POP3 always
	// PollInterval. Returns ctx.Err() when ctx ends.
	Wait(ctx context.Context) error
	// Close logs out and closes the connection. Cancel the context of a
	// running call first.
	Close() error
}

// ErrClosed is returned by calls on a Source after Close.
var ErrClosed = errors.New("mailbox closed")

// Open parses a MAILGATE_MAILBOXES entry (see ParseURL) and returns its
// Source. It does no network I/O: the first Fetch, Done or Wait connects,
// and a call after a dropped connection reconnects transparently (the call
// that saw the drop returns its error). Errors never contain the password.
func Open(rawURL string, cfg Config) (Source, error) {
	set, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if set.isPOP3() {
		return newPOP3Source(set, cfg), nil
	}
	return newIMAPSource(set, cfg), nil
}

// dial opens the TCP connection (and the TLS session for implicit TLS),
// bounded by ctx and DialTimeout.
func dial(ctx context.Context, set Settings, cfg Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	addr := net.JoinHostPort(set.Host, strconv.Itoa(set.Port))
	d := &net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if set.TLS != TLSImplicit {
		return conn, nil
	}
	tc := tls.Client(conn, cfg.tlsConfig(set.Host))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tc, nil
}
