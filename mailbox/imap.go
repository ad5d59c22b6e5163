package mailbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// imapSource reads one IMAP folder. Which messages Fetch lists:
//   - with a processed folder: every message not flagged \Deleted (UID
//     SEARCH NOT DELETED), since Done moves processed ones out;
//   - without: the unseen ones (UID SEARCH UNSEEN NOT DELETED), since Done
//     marks processed ones \Seen. A person reading the mailbox with a mail
//     client and marking a message read first hides it from the poller; use
//     a processed folder when people share the mailbox.
//
// Either way skip filters what the caller has already processed, which
// covers a crash between the caller's commit and Done.
type imapSource struct {
	set Settings
	cfg Config

	mu          sync.Mutex
	c           *imapclient.Client
	uidValidity uint32
	folderReady bool          // the processed folder exists (this connection)
	newMail     chan struct{} // EXISTS seen since the last Fetch; buffered 1
	closed      bool
}

// newIMAPSource returns an unconnected source.
func newIMAPSource(set Settings, cfg Config) *imapSource {
	return &imapSource{set: set, cfg: cfg, newMail: make(chan struct{}, 1)}
}

// Name implements Source.
func (s *imapSource) Name() string { return s.set.Name() }

// client returns the connected client with the folder selected, connecting
// when there is none or the previous one was closed.
func (s *imapSource) client(ctx context.Context) (*imapclient.Client, error) {
	if s.closed {
		return nil, ErrClosed
	}
	if s.c != nil {
		select {
		case <-s.c.Closed():
			s.c = nil
		default:
			return s.c, nil
		}
	}
	c, err := s.connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	s.c, s.folderReady = c, false
	return c, nil
}

// connect dials, secures, logs in and selects the folder.
func (s *imapSource) connect(ctx context.Context) (*imapclient.Client, error) {
	conn, err := dial(ctx, s.set, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := s.newClient(conn)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	if err := s.login(c); err != nil {
		_ = c.Close()
		return nil, ctxErr(ctx, err)
	}
	data, err := c.Select(s.set.Folder, nil).Wait()
	if err != nil {
		_ = c.Close()
		return nil, ctxErr(ctx, fmt.Errorf("select %q: %w", s.set.Folder, err))
	}
	if s.uidValidity != 0 && s.uidValidity != data.UIDValidity {
		s.cfg.Log.Warn("mailbox uidvalidity changed: ids restart", "mailbox", s.Name(),
			"old", s.uidValidity, "new", data.UIDValidity)
	}
	s.uidValidity = data.UIDValidity
	return c, nil
}

// newClient wraps conn, upgrading with STARTTLS (RFC 3501 §6.2.1) when
// configured; imapclient fails when the server refuses STARTTLS or the
// certificate does not verify, before any credentials are sent.
func (s *imapSource) newClient(conn net.Conn) (*imapclient.Client, error) {
	opts := &imapclient.Options{
		TLSConfig: s.cfg.tlsConfig(s.set.Host),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: s.onMailbox,
		},
	}
	if s.set.TLS != TLSStartTLS {
		return imapclient.New(conn, opts), nil
	}
	c, err := imapclient.NewStartTLS(conn, opts)
	if err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	return c, nil
}

// onMailbox runs on imapclient's reader goroutine: an untagged EXISTS
// (RFC 3501 §7.3.1) means new mail may be there. It never blocks.
func (s *imapSource) onMailbox(data *imapclient.UnilateralDataMailbox) {
	if data.NumMessages == nil {
		return
	}
	select {
	case s.newMail <- struct{}{}:
	default:
	}
}

// login uses LOGIN (RFC 3501 §6.2.3), or AUTHENTICATE PLAIN (RFC 4616)
// when the server advertises LOGINDISABLED.
func (s *imapSource) login(c *imapclient.Client) error {
	if c.Caps().Has(imap.CapLoginDisabled) {
		if err := c.Authenticate(sasl.NewPlainClient("", s.set.User, s.set.secret())); err != nil {
			return fmt.Errorf("authenticate plain as %q: %w", s.set.User, err)
		}
		return nil
	}
	if err := c.Login(s.set.User, s.set.secret()).Wait(); err != nil {
		return fmt.Errorf("login as %q: %w", s.set.User, err)
	}
	return nil
}

// drop closes the connection after an error; the next call reconnects.
func (s *imapSource) drop() {
	if s.c != nil {
		_ = s.c.Close()
		s.c = nil
	}
}

// ctxErr prefers the context's error: a cancelled call closes the
// connection, and the resulting I/O error says less than ctx.Err().
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Close implements Source: LOGOUT (RFC 3501 §6.1.3) and close.
func (s *imapSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.c == nil {
		return nil
	}
	err := s.c.Logout().Wait()
	_ = s.c.Close()
	s.c = nil
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: logout: %w", s.Name(), err)
	}
	return nil
}
