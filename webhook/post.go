package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrForbiddenAddress: the endpoint's address is one the SSRF guard
// refuses (loopback, private, link-local, …) and no allowed network holds.
var ErrForbiddenAddress = errors.New("webhook endpoint address is not public")

// ErrBadURL: the endpoint URL is not one mailgate posts to.
var ErrBadURL = errors.New("webhook URL")

// Config configures a Client.
type Config struct {
	// AllowedNetworks are exempt from the SSRF guard
	// (MAILGATE_WEBHOOK_ALLOWED_NETWORKS: tests, private deployments).
	AllowedNetworks []netip.Prefix
	// AllowHTTP allows plain-http URLs (MAILGATE_WEBHOOK_ALLOW_HTTP);
	// otherwise only https. Default false.
	AllowHTTP bool
	// Timeout bounds one delivery: connect, TLS, request and the answer's
	// headers and body. Default 15 seconds.
	Timeout time.Duration
	// MaxResponseBody is how much of the answer's body is kept for the
	// delivery log. Default 4 KiB.
	MaxResponseBody int
	// UserAgent is sent with every delivery. Default "mailgate-webhooks".
	UserAgent string
	// Resolver resolves endpoint host names, for connections and for
	// CheckEndpoint; tests point it at a DNS server on loopback. Default
	// the system resolver.
	Resolver *net.Resolver
	// MaxIdleConnsPerHost is how many idle connections to one endpoint
	// are kept for reuse. Default 16.
	MaxIdleConnsPerHost int
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.MaxResponseBody == 0 {
		c.MaxResponseBody = 4 << 10
	}
	if c.UserAgent == "" {
		c.UserAgent = "mailgate-webhooks"
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = 16
	}
	return c
}

// Client posts deliveries.
type Client struct {
	cfg  Config
	http *http.Client
}

// New returns a Client. It never uses a proxy from the environment and
// never follows a redirect (a 3xx answer is a failed delivery): either
// would let an endpoint send the request somewhere the guard did not see.
func New(cfg Config) *Client {
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: c.guard, Resolver: cfg.Resolver}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	c.http = &http.Client{
		Transport:     transport,
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// AllowingHTTP returns a Client with c's settings (its SSRF guard,
// allowed networks, resolver and timeout) that also fetches plain-http
// URLs, or c when it already does: for resources published only over
// http, such as the issuer certificates an SNS signing certificate names.
func (c *Client) AllowingHTTP() *Client {
	if c.cfg.AllowHTTP {
		return c
	}
	cfg := c.cfg
	cfg.AllowHTTP = true
	return New(cfg)
}

// CheckURL refuses a URL mailgate would not post to: not https (or http
// when allowed), no host, credentials in it, or a literal address the
// guard refuses. A host name is checked again at every connection, on the
// address it resolves to then (DNS rebinding).
func (c *Client) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	switch {
	case u.Scheme != "https" && !(u.Scheme == "http" && c.cfg.AllowHTTP):
		if c.cfg.AllowHTTP {
			return fmt.Errorf("%w: scheme must be https or http", ErrBadURL)
		}
		return fmt.Errorf("%w: scheme must be https", ErrBadURL)
	case u.Hostname() == "":
		return fmt.Errorf("%w: no host", ErrBadURL)
	case u.User != nil:
		return fmt.Errorf("%w: credentials in the URL are not allowed (use the signature)", ErrBadURL)
	case u.Fragment != "":
		return fmt.Errorf("%w: a fragment is not sent to a server", ErrBadURL)
	}
	if addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		if rule := c.refusal(addr); rule != "" {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, rule)
		}
	}
	return nil
}

// CheckEndpoint is CheckURL, and for a host name the guard's decision on
// every address it resolves to now; the error names the rule, never the
// address (a host name's internal address is not the customer's to
// learn). A name that does not resolve passes: the guard runs again at
// every connection.
func (c *Client) CheckEndpoint(ctx context.Context, raw string) error {
	if err := c.CheckURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw) // CheckURL parsed it
	host := u.Hostname()
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return nil
	}
	addrs, err := c.cfg.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, addr := range addrs {
		if rule := c.refusal(addr); rule != "" {
			return fmt.Errorf("%w: %s resolves to a %s address", ErrForbiddenAddress, host, rule)
		}
	}
	return nil
}

// guard is the dialer's Control: it runs on the address actually being
// connected to, after name resolution.
func (c *Client) guard(_, address string, _ syscall.RawConn) error {
	// The error names no address: it reaches the delivery log, and a
	// host name's internal address is not the customer's to learn.
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !c.allowed(ap.Addr()) {
		return ErrForbiddenAddress
	}
	return nil
}

// allowed: a public unicast address, or one inside an allowed network.
func (c *Client) allowed(addr netip.Addr) bool { return c.refusal(addr) == "" }

// refusal names the rule refusing addr ("loopback", "private", …), or is
// "" when the guard allows it: a public unicast address, or one inside an
// allowed network. An IPv4-mapped address is judged as the IPv4 address.
func (c *Client) refusal(addr netip.Addr) string {
	addr = addr.Unmap()
	for _, p := range c.cfg.AllowedNetworks {
		if p.Contains(addr) {
			return ""
		}
	}
	return Refusal(addr)
}

// Refusal names the rule of the SSRF guard refusing addr, ignoring allowed
// networks: "loopback", "private", "link-local", "carrier-grade NAT",
// "multicast", "unspecified" or "reserved"; "" for a public unicast
// address. An IPv4-mapped address is judged as the IPv4 address.
func Refusal(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsMulticast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast():
		return "multicast"
	case cgnat.Contains(addr):
		return "carrier-grade NAT"
	case !public(addr):
		return "reserved"
	}
	return ""
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// nonPublic are special-purpose ranges beyond what netip classifies (RFC
// 6890): "this network", carrier-grade NAT (RFC 6598), IETF protocol
// assignments, benchmarking (RFC 2544), documentation, 6to4 relay, the
// reserved 240/4, NAT64 (RFC 6052) and discard (RFC 6666).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1)
	netip.MustParsePrefix("::ffff:0:0:0/96"), // SIIT IPv4-translated (RFC 2765)
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated, RFC 3879)
}

// public reports whether addr is a globally reachable unicast address.
func public(addr netip.Addr) bool {
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() ||
		addr.IsMulticast() || !addr.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// Result is how one delivery went.
type Result struct {
	// StatusCode is the answer's status, 0 when there was none.
	StatusCode int
	// Body is the start of the answer's body (MaxResponseBody bytes,
	// valid UTF-8), for the delivery log.
	Body string
	// Latency is the time from sending to the end of the answer.
	Latency time.Duration
	// RetryAfter is the answer's Retry-After header (RFC 9110 §10.2.3),
	// as sent: delay-seconds or an HTTP-date.
	RetryAfter string
	// Err is why the delivery failed: no answer, or a status other than
	// 2xx. Nil when the endpoint took it.
	Err error
}

// OK reports whether the endpoint took the delivery (a 2xx answer).
func (r Result) OK() bool { return r.Err == nil }

// Post sends body to url as one delivery with the given id, timestamp and
// signing secrets.
func (c *Client) Post(ctx context.Context, rawURL string, secrets []string, id string, ts time.Time, body []byte) Result {
	if err := c.CheckURL(rawURL); err != nil {
		return Result{Err: err}
	}
	headers, err := Headers(secrets, id, ts, body)
	if err != nil {
		return Result{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("%w: %w", ErrBadURL, err)}
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	began := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, ErrForbiddenAddress) {
			err = ErrForbiddenAddress // the dial error would name the address
		}
		return Result{Latency: time.Since(began), Err: fmt.Errorf("post webhook: %w", err)}
	}
	defer resp.Body.Close()
	kept, _ := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxResponseBody)))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	res := Result{StatusCode: resp.StatusCode, Body: validUTF8(kept), Latency: time.Since(began),
		RetryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode/100 != 2 {
		res.Err = fmt.Errorf("webhook endpoint answered %d", resp.StatusCode)
	}
	return res
}

// validUTF8 is b as a string with a rune cut at the end, or invalid
// bytes, dropped.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "")
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Get fetches rawURL through the same guard as Post (no proxy, no
// redirect, refused addresses checked at every connection) and returns at
// most limit bytes of a 200 answer's body. It serves fetches that a
// notification asks for, such as an SNS signing certificate.
func (c *Client) Get(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	if err := c.CheckURL(rawURL); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, ErrForbiddenAddress) {
			err = ErrForbiddenAddress
		}
		return nil, fmt.Errorf("get: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get: answered %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return b, nil
}
