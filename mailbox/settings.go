package mailbox

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/redact"
)

// TLSMode is how a connection is secured.
type TLSMode string

// TLS modes. Implicit is fixed by the imaps and pop3s schemes; imap and pop3
// take starttls (the default) or none.
const (
	// TLSImplicit starts TLS at connect (RFC 8314 §3.2): imaps, pop3s.
	TLSImplicit TLSMode = "implicit"
	// TLSStartTLS upgrades with IMAP STARTTLS (RFC 3501 §6.2.1) or POP3 STLS
	// (RFC 2595 §4) before logging in, and refuses to log in without it.
	TLSStartTLS TLSMode = "starttls"
	// TLSNone sends the password in plaintext: allowed for loopback hosts only.
	TLSNone TLSMode = "none"
)

// Settings is one parsed MAILGATE_MAILBOXES entry. The password is kept
// unexported and String/GoString redact it, so printing Settings is safe.
type Settings struct {
	// Scheme is imap, imaps, pop3 or pop3s.
	Scheme string
	// Host is the server name or IP literal (no brackets).
	Host string
	// Port defaults to 143 (imap), 993 (imaps), 110 (pop3), 995 (pop3s).
	Port int
	// User is the login name (percent-decoded).
	User string
	// Folder is the IMAP mailbox to read (default INBOX); empty for POP3.
	Folder string
	// Processed is the IMAP folder processed messages are moved to; empty
	// keeps them where they are (marked \Seen). Not allowed for POP3.
	Processed string
	// Delete removes processed messages (IMAP \Deleted+EXPUNGE, POP3 DELE).
	// Default false. Not combinable with Processed.
	Delete bool
	// TLS is how the connection is secured.
	TLS TLSMode

	password string
}

// secret returns the login password (never log it).
func (s Settings) secret() string { return s.password }

// Name is scheme://user@host:port/folder (POP3 without folder), never the
// password: the mailbox's label in metrics, logs and locks.
func (s Settings) Name() string {
	u := url.URL{Scheme: s.Scheme, User: url.User(s.User), Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port))}
	if s.Folder != "" {
		u.Path = "/" + s.Folder
	}
	return u.String()
}

// String describes the settings with the password redacted.
func (s Settings) String() string {
	return fmt.Sprintf("%s (tls=%s processed=%q delete=%t)", s.Name(), s.TLS, s.Processed, s.Delete)
}

// GoString keeps %#v from printing the password.
func (s Settings) GoString() string { return "mailbox.Settings{" + s.String() + "}" }

// ErrBadURL is returned (wrapped) for a MAILGATE_MAILBOXES entry that cannot
// be used; the message says why and never contains the password.
var ErrBadURL = errors.New("bad mailbox url")

// defaultPorts are the IANA ports of each scheme.
var defaultPorts = map[string]int{"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}

// ParseURL parses a MAILGATE_MAILBOXES entry:
//
//	imaps://user:pass@host:993/INBOX?processed=Processed&delete=false
//	imap://user:pass@host:143/INBOX?tls=starttls|none
//	pop3s://user:pass@host:995?delete=false
//	pop3://user:pass@host:110?tls=starttls|none
//
// User and password are percent-decoded. tls=none is accepted only for
// localhost and loopback IP literals. Unknown query parameters are errors.
func ParseURL(rawURL string) (Settings, error) {
	u, err := redact.ParseURL(rawURL)
	if err != nil {
		return Settings{}, fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	s := Settings{Scheme: strings.ToLower(u.Scheme)}
	port, ok := defaultPorts[s.Scheme]
	if !ok {
		return Settings{}, fmt.Errorf("%w: scheme %q is not imap, imaps, pop3 or pop3s", ErrBadURL, u.Scheme)
	}
	if err := s.parseAuthority(u, port); err != nil {
		return Settings{}, err
	}
	if err := s.parsePath(u); err != nil {
		return Settings{}, err
	}
	if err := s.parseQuery(u.Query()); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// parseAuthority reads user, password, host and port.
func (s *Settings) parseAuthority(u *url.URL, defaultPort int) error {
	if u.User == nil || u.User.Username() == "" {
		return fmt.Errorf("%w: user is missing", ErrBadURL)
	}
	pass, ok := u.User.Password()
	if !ok || pass == "" {
		return fmt.Errorf("%w: password is missing", ErrBadURL)
	}
	s.User, s.password = u.User.Username(), pass
	s.Host = u.Hostname()
	if s.Host == "" {
		return fmt.Errorf("%w: host is missing", ErrBadURL)
	}
	s.Port = defaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: port %q is not 1-65535", ErrBadURL, p)
		}
		s.Port = n
	}
	return nil
}

// parsePath reads the IMAP folder; POP3 has a single maildrop.
func (s *Settings) parsePath(u *url.URL) error {
	folder := strings.TrimPrefix(u.Path, "/")
	if s.isPOP3() {
		if folder != "" {
			return fmt.Errorf("%w: pop3 has no folders (path %q)", ErrBadURL, u.Path)
		}
		return nil
	}
	if folder == "" {
		folder = "INBOX"
	}
	s.Folder = folder
	return nil
}

// parseQuery reads processed, delete and tls.
func (s *Settings) parseQuery(q url.Values) error {
	for key, vals := range q {
		if len(vals) != 1 {
			return fmt.Errorf("%w: parameter %q given %d times", ErrBadURL, key, len(vals))
		}
		var err error
		switch key {
		case "processed":
			err = s.setProcessed(vals[0])
		case "delete":
			s.Delete, err = strconv.ParseBool(vals[0])
			if err != nil {
				err = fmt.Errorf("%w: delete=%q is not true or false", ErrBadURL, vals[0])
			}
		case "tls":
			err = s.setTLS(vals[0])
		default:
			err = fmt.Errorf("%w: unknown parameter %q (want processed, delete, tls)", ErrBadURL, key)
		}
		if err != nil {
			return err
		}
	}
	if s.TLS == "" {
		s.TLS = s.defaultTLS()
	}
	if s.Delete && s.Processed != "" {
		return fmt.Errorf("%w: processed and delete=true exclude each other", ErrBadURL)
	}
	return nil
}

// setProcessed accepts a processed folder for IMAP only.
func (s *Settings) setProcessed(v string) error {
	if s.isPOP3() {
		return fmt.Errorf("%w: pop3 has no folders (processed=%q)", ErrBadURL, v)
	}
	if v == "" || v == s.Folder {
		return fmt.Errorf("%w: processed folder %q must be a folder other than %q", ErrBadURL, v, s.Folder)
	}
	s.Processed = v
	return nil
}

// setTLS accepts tls=starttls|none on the plain schemes; none only for a
// loopback host, so a password never crosses a network in plaintext.
func (s *Settings) setTLS(v string) error {
	if s.Scheme == "imaps" || s.Scheme == "pop3s" {
		return fmt.Errorf("%w: %s always uses implicit tls (tls=%q)", ErrBadURL, s.Scheme, v)
	}
	switch TLSMode(v) {
	case TLSStartTLS:
	case TLSNone:
		if !isLoopback(s.Host) {
			return fmt.Errorf("%w: tls=none is allowed only for loopback hosts, not %q", ErrBadURL, s.Host)
		}
	default:
		return fmt.Errorf("%w: tls=%q is not starttls or none", ErrBadURL, v)
	}
	s.TLS = TLSMode(v)
	return nil
}

// defaultTLS is implicit for the "s" schemes, else STARTTLS/STLS.
func (s *Settings) defaultTLS() TLSMode {
	if s.Scheme == "imaps" || s.Scheme == "pop3s" {
		return TLSImplicit
	}
	return TLSStartTLS
}

// isPOP3 reports whether the scheme is pop3 or pop3s.
func (s *Settings) isPOP3() bool { return strings.HasPrefix(s.Scheme, "pop3") }

// isLoopback accepts "localhost" and loopback IP literals (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
