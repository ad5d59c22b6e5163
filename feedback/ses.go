package feedback

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // SNS SignatureVersion 1 is SHA1withRSA
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// CertFetcher fetches the PEM certificate at an https URL. Production code
// passes the webhook package's SSRF-guarded client; tests pass a function
// that returns a certificate they made.
type CertFetcher func(ctx context.Context, rawURL string) ([]byte, error)

// SNS verifies Amazon SNS messages carrying SES notifications, as AWS
// documents SNS message signing: the string to sign is the listed fields
// as "Name\nvalue\n" in byte order of their names, signed with
// SHA1withRSA (SignatureVersion 1) or SHA256withRSA (2) by the
// certificate at SigningCertURL, which must be https on an SNS host
// (sns.<region>.amazonaws.com) and chain to a trusted root. Certificates
// are cached by URL: SNS rotates them rarely and names each by its own
// URL.
type SNS struct {
	// TopicARN is the only topic accepted: anyone can make an SNS topic
	// whose messages AWS signs, so the signature alone does not say the
	// message is about this project's mail.
	TopicARN string
	// Fetch fetches a signing certificate, and the issuer certificate its
	// Authority Information Access names (see CheckIssuerURL).
	Fetch CertFetcher
	// Roots are the roots a signing certificate must chain to; nil for
	// the system's (AWS's SNS certificates are issued under Amazon Root
	// CA, which every system pool holds).
	Roots *x509.CertPool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxAge bounds the message's Timestamp; default DefaultMaxAge.
	MaxAge time.Duration
	// Certs caches verified certificates; nil for none. Share one across
	// verifiers.
	Certs *CertCache
}

// certCacheSize bounds CertCache. SNS signs with one certificate per
// region at a time and rotates it rarely, and a deployment receives from
// a few regions: 16 holds each region's current and previous certificate
// for several regions. Only a certificate that fetched from an SNS host
// and verified is cached, so a sender cannot fill it with its own.
const certCacheSize = 16

// CertCache holds verified SNS signing certificates by URL, at most
// certCacheSize; an expired one is dropped when it is looked up. Its zero
// value is ready; it is safe for concurrent use.
type CertCache struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
	order []string // URLs in certs, oldest first
}

// get is the cached certificate of u while it is valid at now; an
// expired (or not yet valid) one is dropped.
func (c *CertCache) get(u string, now time.Time) *x509.Certificate {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cert := c.certs[u]
	if cert != nil && !validAt(cert, now) {
		c.drop(u)
		return nil
	}
	return cert
}

func (c *CertCache) put(u string, cert *x509.Certificate) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.certs == nil {
		c.certs = map[string]*x509.Certificate{}
	}
	if _, ok := c.certs[u]; ok {
		c.drop(u)
	}
	for len(c.order) >= certCacheSize {
		c.drop(c.order[0])
	}
	c.certs[u] = cert
	c.order = append(c.order, u)
}

// Len is how many certificates are cached.
func (c *CertCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.certs)
}

// drop forgets u; c.mu is held.
func (c *CertCache) drop(u string) {
	delete(c.certs, u)
	for i, o := range c.order {
		if o == u {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

func validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// snsMessage is an SNS HTTP(S) message body.
type snsMessage struct {
	Type             string `json:"Type"`
	MessageID        string `json:"MessageId"`
	Token            string `json:"Token"`
	TopicArn         string `json:"TopicArn"`
	Subject          string `json:"Subject"`
	Message          string `json:"Message"`
	SubscribeURL     string `json:"SubscribeURL"`
	Timestamp        string `json:"Timestamp"`
	SignatureVersion string `json:"SignatureVersion"`
	Signature        string `json:"Signature"`
	SigningCertURL   string `json:"SigningCertURL"`
}

// snsHost is AWS's SNS endpoint host, sns.REGION.amazonaws.com, or
// sns.REGION.amazonaws.com.cn for a China region (cn-…): REGION is an AWS
// region name (area, -gov for GovCloud, a direction, a number), so that
// other amazonaws.com hosts whose label merely follows "sns." (S3 bucket
// hosts such as sns.s3.amazonaws.com, which anyone can fill) are refused.
var snsHost = regexp.MustCompile(`^sns\.([a-z]{2}(?:-gov)?-` +
	`(?:north|south|east|west|central|northeast|northwest|southeast|southwest)-[1-9][0-9]?)\.amazonaws\.com(\.cn)?$`)

// isSNSHost reports whether host is an SNS endpoint host.
func isSNSHost(host string) bool {
	m := snsHost.FindStringSubmatch(host)
	return m != nil && strings.HasPrefix(m[1], "cn-") == (m[2] != "")
}

// hostName is a DNS host name (not an address literal).
var hostName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]([a-z0-9-]*[a-z0-9])?$`)

// Verify checks an SNS message and reads the SES notification it carries.
func (v *SNS) Verify(ctx context.Context, body []byte) (Notification, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return Notification{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.Signature == "" || m.SigningCertURL == "" {
		return Notification{}, ErrUnauthenticated
	}
	if m.TopicArn != v.TopicARN || v.TopicARN == "" {
		return Notification{}, ErrTopic
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return Notification{}, fmt.Errorf("%w: Timestamp: %w", ErrMalformed, err)
	}
	if !fresh(v.now(), ts, v.maxAge()) {
		return Notification{}, ErrStale
	}
	if err := v.checkSignature(ctx, m); err != nil {
		return Notification{}, err
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		return Notification{SubscribeURL: m.SubscribeURL}, nil
	case "Notification":
		evs, err := parseSES(m.MessageID, []byte(m.Message))
		return Notification{Events: evs}, err
	default:
		return Notification{}, nil
	}
}

func (v *SNS) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

func (v *SNS) maxAge() time.Duration {
	if v.MaxAge <= 0 {
		return DefaultMaxAge
	}
	return v.MaxAge
}

// checkSignature verifies m's signature with its signing certificate.
func (v *SNS) checkSignature(ctx context.Context, m snsMessage) error {
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return fmt.Errorf("%w: SignatureVersion %q", ErrUnauthenticated, m.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("%w: Signature is not base64", ErrForged)
	}
	cert, err := v.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: not an RSA key", ErrCertificate)
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, digest(hash, snsStringToSign(m)), sig); err != nil {
		return ErrForged
	}
	return nil
}

func digest(h crypto.Hash, b []byte) []byte {
	if h == crypto.SHA1 {
		d := sha1.Sum(b) //nolint:gosec // SignatureVersion 1
		return d[:]
	}
	d := sha256.Sum256(b)
	return d[:]
}

// snsStringToSign is the canonical string AWS signs: for a Notification
// Message, MessageId, Subject (when present), Timestamp, TopicArn, Type;
// for a (Un)SubscriptionConfirmation Message, MessageId, SubscribeURL,
// Timestamp, Token, TopicArn, Type.
func snsStringToSign(m snsMessage) []byte {
	var fields [][2]string
	if m.Type == "Notification" {
		fields = [][2]string{{"Message", m.Message}, {"MessageId", m.MessageID}}
		if m.Subject != "" {
			fields = append(fields, [2]string{"Subject", m.Subject})
		}
		fields = append(fields, [2]string{"Timestamp", m.Timestamp}, [2]string{"TopicArn", m.TopicArn},
			[2]string{"Type", m.Type})
	} else {
		fields = [][2]string{{"Message", m.Message}, {"MessageId", m.MessageID}, {"SubscribeURL", m.SubscribeURL},
			{"Timestamp", m.Timestamp}, {"Token", m.Token}, {"TopicArn", m.TopicArn}, {"Type", m.Type}}
	}
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f[0] + "\n" + f[1] + "\n")
	}
	return []byte(b.String())
}

// CheckCertURL refuses a signing certificate URL that is not https on an
// SNS host, with no user, port or query, naming a .pem file.
func CheckCertURL(raw string) error {
	_, err := certURL(raw)
	return err
}

// certURL checks a signing certificate URL (CheckCertURL) and returns it
// with its path's percent-encoding undone where it need not be, so that
// the spellings of one URL are one cache key and one fetch.
func certURL(raw string) (string, error) {
	u, err := CheckSNSURL(raw)
	if err != nil || u.RawQuery != "" || !strings.HasSuffix(u.Path, ".pem") {
		return "", fmt.Errorf("%w: %q is not an SNS certificate URL", ErrCertificate, raw)
	}
	return "https://" + u.Host + (&url.URL{Path: u.Path}).EscapedPath(), nil
}

// CheckSNSURL refuses a URL that is not https on an SNS host
// (sns.<region>.amazonaws.com) without user or port: the only URLs an
// SNS message may make mailgate fetch (its certificate, its
// SubscribeURL).
func CheckSNSURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" || !isSNSHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: %q is not an SNS URL", ErrCertificate, raw)
	}
	return u, nil
}

// CheckIssuerURL refuses an issuer certificate URL (in a signing
// certificate's Authority Information Access) that is not http or https
// on a host name, without user, port or query. The URL is AWS's: it comes
// from a certificate served by an SNS host. Its host is not pinned, since
// AWS names amazontrust.com for most partitions and may name another CA's
// for others; the fetch goes through the caller's SSRF guard, and what it
// returns is only used as an intermediate that must itself chain to a
// trusted root. Plain http is how CAs publish these.
func CheckIssuerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.Port() != "" ||
		u.RawQuery != "" || !hostName.MatchString(u.Hostname()) {
		return fmt.Errorf("%w: %q is not an issuer certificate URL", ErrCertificate, raw)
	}
	return nil
}

// cert returns the verified certificate at raw, from the cache or fetched.
func (v *SNS) cert(ctx context.Context, raw string) (*x509.Certificate, error) {
	raw, err := certURL(raw)
	if err != nil {
		return nil, err
	}
	now := v.now()
	if c := v.Certs.get(raw, now); c != nil {
		return c, nil
	}
	if v.Fetch == nil {
		return nil, fmt.Errorf("%w: no fetcher", ErrCertificate)
	}
	b, err := v.Fetch(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertUnavailable, err)
	}
	certs, err := parseCerts(b)
	if err != nil {
		return nil, err
	}
	c := certs[0]
	if !validAt(c, now) {
		return nil, fmt.Errorf("%w: expired or not yet valid", ErrCertificate)
	}
	if err := v.verifyChain(ctx, c, certs[1:], now); err != nil {
		return nil, err
	}
	v.Certs.put(raw, c)
	return c, nil
}

// verifyChain checks that c chains to v.Roots (or the system's), through
// the intermediates given with it and, when those are not enough (SNS
// serves the signing certificate alone), through the issuer certificate
// its Authority Information Access names (CheckIssuerURL).
//
// No host name is required of c: AWS issues SNS signing certificates to
// names that differ by region and partition (sns.amazonaws.com for most,
// others for China, GovCloud and opt-in regions), and documents none, so
// a name check could refuse genuine ones. The chain to a public root, the
// SNS host the certificate came from and the topic together say the
// message is AWS's for this project's topic.
func (v *SNS) verifyChain(ctx context.Context, c *x509.Certificate, given []*x509.Certificate, now time.Time) error {
	inter := x509.NewCertPool()
	for _, g := range given {
		inter.AddCert(g)
	}
	opts := x509.VerifyOptions{Roots: v.Roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	_, err := c.Verify(opts)
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || len(c.IssuingCertificateURL) == 0 {
		return fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	for i, u := range c.IssuingCertificateURL {
		if i == 2 { // AWS names one; a certificate naming many is not trusted to be fetched for
			break
		}
		if CheckIssuerURL(u) != nil {
			continue
		}
		if is := v.Certs.get(u, now); is != nil {
			inter.AddCert(is)
			continue
		}
		b, ferr := v.Fetch(ctx, u)
		if ferr != nil {
			return fmt.Errorf("%w: issuer certificate: %w", ErrCertUnavailable, ferr)
		}
		issuers, perr := parseCerts(b)
		if perr != nil {
			continue
		}
		for _, is := range issuers {
			inter.AddCert(is)
		}
		// Kept by its URL, so that the next signing certificate (or a
		// retry after a slow first fetch) needs no second fetch; a
		// certificate from the cache is still verified as a link.
		v.Certs.put(u, issuers[0])
	}
	if _, err := c.Verify(opts); err != nil {
		return fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	return nil
}

// parseCerts reads the certificates of b: PEM blocks (the first is the
// signing certificate, any others its intermediates), else one DER
// certificate (how issuer certificates are published).
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		return out, nil
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%w: not a PEM or DER certificate", ErrCertificate)
	}
	return []*x509.Certificate{c}, nil
}

// sesNotification is an SES notification (notificationType) or event
// publishing record (eventType), the Message of an SNS notification.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Mail             struct {
		MessageID string `json:"messageId"`
		Headers   []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
	Bounce *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		FeedbackID        string `json:"feedbackId"`
		Timestamp         string `json:"timestamp"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		FeedbackID            string `json:"feedbackId"`
		Timestamp             string `json:"timestamp"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ComplainedRecipients  []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Delivery *struct {
		Timestamp  string   `json:"timestamp"`
		Recipients []string `json:"recipients"`
	} `json:"delivery"`
	DeliveryDelay *struct {
		Timestamp         string `json:"timestamp"`
		DelayType         string `json:"delayType"`
		DelayedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"delayedRecipients"`
	} `json:"deliveryDelay"`
}

// sesSeverity is the verdict of SES's bounceType: Permanent (SES
// suppresses the address), Transient (SES gave up on this message: a
// bounce, soft; while it still retries it publishes DeliveryDelay
// instead); Undetermined gives none.
var sesSeverity = map[string]string{"Permanent": SeverityPermanent, "Transient": SeverityTemporary}

// sesCause is the cause (Event.Cause) of the bounce subtypes of SES's
// notification contents that name one. General and Undetermined name
// none. Suppressed: SES refused the address for its recent history of
// bouncing as an invalid one; OnAccountSuppressionList: the account's
// own list, kept of such addresses.
var sesCause = map[string]string{
	"NoEmail": "userunknown", "Suppressed": "userunknown", "OnAccountSuppressionList": "userunknown",
	"MailboxFull": "mailboxfull", "MessageTooLarge": "mesgtoobig", "ContentRejected": "contenterror",
	"AttachmentRejected": "contenterror",
}

// parseSES reads an SES notification into events; snsID names them.
func parseSES(snsID string, msg []byte) ([]Event, error) {
	var n sesNotification
	if err := json.Unmarshal(msg, &n); err != nil {
		return nil, fmt.Errorf("%w: SES message: %w", ErrMalformed, err)
	}
	base := Event{MessageID: n.Mail.CommonHeaders.MessageID}
	for _, h := range n.Mail.Headers {
		switch {
		case strings.EqualFold(h.Name, "X-Mailgate-ID"):
			base.MailgateID = h.Value
		case strings.EqualFold(h.Name, "Message-ID") && base.MessageID == "":
			base.MessageID = h.Value
		}
	}
	var out []Event
	add := func(e Event, ts string) {
		e.ID = snsID + "/" + strings.ToLower(e.Recipient)
		e.At, _ = time.Parse(time.RFC3339Nano, ts)
		out = append(out, e)
	}
	kind := n.NotificationType
	if kind == "" {
		kind = n.EventType
	}
	switch {
	case kind == "Bounce" && n.Bounce != nil:
		for _, r := range n.Bounce.BouncedRecipients {
			e := base
			e.Kind, e.Recipient, e.Status, e.Diagnostic = KindBounce, r.EmailAddress, r.Status, r.DiagnosticCode
			e.Severity, e.Cause = sesSeverity[n.Bounce.BounceType], sesCause[n.Bounce.BounceSubType]
			add(e, n.Bounce.Timestamp)
		}
	case kind == "Complaint" && n.Complaint != nil:
		for _, r := range n.Complaint.ComplainedRecipients {
			e := base
			e.Kind, e.Recipient, e.FeedbackType = KindComplaint, r.EmailAddress, n.Complaint.ComplaintFeedbackType
			add(e, n.Complaint.Timestamp)
		}
	case kind == "Delivery" && n.Delivery != nil:
		for _, r := range n.Delivery.Recipients {
			e := base
			e.Kind, e.Recipient = KindDelivery, r
			add(e, n.Delivery.Timestamp)
		}
	case kind == "DeliveryDelay" && n.DeliveryDelay != nil:
		// Event publishing only: SES is still retrying these recipients.
		for _, r := range n.DeliveryDelay.DelayedRecipients {
			e := base
			e.Kind, e.Recipient, e.Severity = KindDelay, r.EmailAddress, SeverityTemporary
			e.Status, e.Diagnostic = r.Status, r.DiagnosticCode
			add(e, n.DeliveryDelay.Timestamp)
		}
	}
	return out, nil
}
