package mta

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/redact"
)

// TLS modes of a relay (RelayConfig.TLS).
const (
	// TLSStartTLS upgrades a plaintext connection with STARTTLS (RFC 3207)
	// and refuses to go on when it is not offered or the certificate does
	// not verify.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314 §3.3, port 465).
	TLSImplicit = "implicit"
	// TLSNone is plaintext; allowed only for loopback hosts (local sinks
	// and tests).
	TLSNone = "none"
)

// SASL mechanisms for RelayConfig.AuthMechanism.
const (
	AuthPlain   = "PLAIN"
	AuthLogin   = "LOGIN"
	AuthCRAMMD5 = "CRAM-MD5"
	AuthXOAuth2 = "XOAUTH2"
)

// RelayConfig is one upstream relay.
type RelayConfig struct {
	// Name labels the relay in metrics, logs and Relays.Send's result.
	// Default "host:port".
	Name string
	// Host is the relay's host name or IP address. Required.
	Host string
	// Port defaults to 587 (starttls), 465 (implicit) or 25 (none).
	Port int
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS string
	// Username and Password authenticate with SMTP AUTH (RFC 4954) when
	// Username is set. The password never appears in errors or String.
	Username, Password string
	// AuthMechanism forces one of AuthPlain, AuthLogin, AuthCRAMMD5 or
	// AuthXOAuth2 (Password is then the OAuth2 access token). Default "":
	// the first of PLAIN, LOGIN, CRAM-MD5, XOAUTH2 the server offers.
	AuthMechanism string
	// MaxConns bounds the pool's open connections; callers beyond it wait.
	// Default 10.
	MaxConns int
	// MaxMessagesPerConn is the number of transactions after which a
	// connection is closed with QUIT. Default 100.
	MaxMessagesPerConn int
	// IdleTimeout is how long an unused connection may be reused; older
	// ones are closed. Default 30s.
	IdleTimeout time.Duration
	// Rate is the raw rate limit from the URL ("N/s", "N/m", "N/h"); a URL
	// with several rate parameters (rate=10/s&rate=1000/h) gives them
	// comma-separated, each to hold. mta does not enforce it, the caller
	// parses it. Default "" (none).
	Rate string
	// HeloName is the name sent in EHLO (RFC 5321 §4.1.1.1); it should be
	// the sending host's FQDN. Default "localhost". With STARTTLS the
	// first, pre-TLS EHLO always says "localhost" (go-smtp's choice).
	HeloName string
	// TLSConfig is cloned for each connection; ServerName is set to Host
	// when empty. Default: system roots, TLS 1.2 or newer. Tests inject
	// RootCAs here.
	TLSConfig *tls.Config
	// Provider is the email service behind the relay: with
	// ProviderPostmark, ProviderSendGrid or ProviderMailgun each message
	// sent through it carries its Envelope.MailgateID in that provider's
	// own header, so that the provider's notifications name the message;
	// ProviderNone adds nothing. Default: by Host's domain
	// (postmarkapp.com, sendgrid.net, mailgun.org), else ProviderNone.
	Provider string
}

// ParseRelayURL parses one MAILGATE_RELAYS entry:
//
//	smtp://user:pass@host:587?tls=starttls&max_conns=10&rate=100/s
//
// Scheme smtp (default tls=starttls) or smtps (default tls=implicit).
// Query parameters: tls, max_conns, max_messages, idle_timeout (a Go
// duration), rate, helo, auth (mechanism), name, provider (postmark,
// sendgrid, mailgun or none; see RelayConfig.Provider). User and password
// are percent-decoded. Errors never contain the password.
func ParseRelayURL(s string) (RelayConfig, error) {
	s = strings.TrimSpace(s)
	u, err := redact.ParseURL(s)
	if err != nil {
		return RelayConfig{}, fmt.Errorf("parse relay url %s: %w", redact.URL(s), err)
	}
	cfg := RelayConfig{Host: u.Hostname()}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		cfg.TLS = TLSImplicit
	default:
		return RelayConfig{}, fmt.Errorf("parse relay url: scheme %q is not smtp or smtps", u.Scheme)
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if p := u.Port(); p != "" {
		if cfg.Port, err = strconv.Atoi(p); err != nil {
			return RelayConfig{}, fmt.Errorf("parse relay url: port %q is not a number", p)
		}
	}
	if err := cfg.applyQuery(u.Query()); err != nil {
		return RelayConfig{}, fmt.Errorf("parse relay url %s: %w", redact.URL(s), err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return RelayConfig{}, fmt.Errorf("parse relay url: %w", err)
	}
	return cfg, nil
}

// ParseRelayURLs parses a comma-separated list of relay URLs (commas inside
// a password must be percent-encoded), in failover order.
func ParseRelayURLs(s string) ([]RelayConfig, error) {
	var cfgs []RelayConfig
	for i, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		cfg, err := ParseRelayURL(part)
		if err != nil {
			return nil, fmt.Errorf("relay %d: %w", i+1, err)
		}
		cfgs = append(cfgs, cfg)
	}
	if len(cfgs) == 0 {
		return nil, errors.New("no relay configured")
	}
	return cfgs, nil
}

// applyQuery sets the fields named by the URL's query parameters.
func (c *RelayConfig) applyQuery(q url.Values) error {
	var err error
	for key, vals := range q {
		v := vals[len(vals)-1]
		switch key {
		case "tls":
			c.TLS = v
		case "max_conns":
			c.MaxConns, err = positiveInt(key, v)
		case "max_messages":
			c.MaxMessagesPerConn, err = positiveInt(key, v)
		case "idle_timeout":
			c.IdleTimeout, err = time.ParseDuration(v)
		case "rate":
			c.Rate = strings.Join(vals, ",")
		case "helo":
			c.HeloName = v
		case "auth":
			c.AuthMechanism = strings.ToUpper(v)
		case "name":
			c.Name = v
		case "provider":
			c.Provider = strings.ToLower(v)
		default:
			return fmt.Errorf("unknown parameter %q", key)
		}
		if err != nil {
			return fmt.Errorf("parameter %s: %w", key, err)
		}
	}
	return nil
}

func positiveInt(key, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q is not a positive number", key, v)
	}
	return n, nil
}

// withDefaults fills in the documented defaults.
func (c RelayConfig) withDefaults() RelayConfig {
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	if c.Port == 0 {
		c.Port = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[c.TLS]
	}
	if c.Name == "" {
		c.Name = c.Addr()
	}
	if c.MaxConns == 0 {
		c.MaxConns = 10
	}
	if c.MaxMessagesPerConn == 0 {
		c.MaxMessagesPerConn = 100
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.HeloName == "" {
		c.HeloName = "localhost"
	}
	if c.Provider == "" {
		c.Provider = providerOfHost(c.Host)
	}
	return c
}

// Validate checks a configuration with its defaults applied: a host, a
// known TLS mode, tls=none only on loopback, a known AUTH mechanism, a
// HELO name without spaces, a known provider.
func (c RelayConfig) Validate() error {
	switch {
	case c.Host == "":
		return errors.New("relay host is empty")
	case c.TLS != TLSStartTLS && c.TLS != TLSImplicit && c.TLS != TLSNone:
		return fmt.Errorf("relay %s: tls=%q is not starttls, implicit or none", c.Host, c.TLS)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("relay %s: port %d out of range", c.Host, c.Port)
	case c.TLS == TLSNone && !IsLoopbackHost(c.Host):
		return fmt.Errorf("relay %s: tls=none is allowed only for loopback hosts (127.0.0.0/8, ::1, localhost)", c.Host)
	case c.MaxConns < 0 || c.MaxMessagesPerConn < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("relay %s: negative pool limit", c.Host)
	case strings.ContainsAny(c.HeloName, " \t\r\n"):
		return fmt.Errorf("relay %s: helo name %q contains white space", c.Host, c.HeloName)
	case !validProvider(c.Provider):
		return fmt.Errorf("relay %s: provider=%q is not postmark, sendgrid, mailgun or none", c.Host, c.Provider)
	}
	switch c.AuthMechanism {
	case "", AuthPlain, AuthLogin, AuthCRAMMD5, AuthXOAuth2:
		return nil
	}
	return fmt.Errorf("relay %s: auth mechanism %q is not PLAIN, LOGIN, CRAM-MD5 or XOAUTH2", c.Host, c.AuthMechanism)
}

// IsLoopbackHost reports whether host is "localhost" or a loopback IP
// address (127.0.0.0/8, ::1). No name is resolved.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Addr is "host:port".
func (c RelayConfig) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// String is the relay as a URL without the password:
// "smtp://user@host:587?tls=starttls".
func (c RelayConfig) String() string {
	u := url.URL{Scheme: "smtp", Host: c.Addr()}
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	q := url.Values{}
	if c.TLS != "" {
		q.Set("tls", c.TLS)
	}
	if c.MaxConns != 0 {
		q.Set("max_conns", strconv.Itoa(c.MaxConns))
	}
	if c.Rate != "" {
		q.Set("rate", c.Rate)
	}
	if c.Provider != "" && c.Provider != ProviderNone {
		q.Set("provider", c.Provider)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
