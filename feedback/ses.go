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
// (sns.<region>.amazonaws.com). Certificates are cached by URL: SNS
// rotates them rarely and names each by its own URL.
type SNS struct {
	// TopicARN is the only topic accepted: anyone can make an SNS topic
	// whose messages AWS signs, so the signature alone does not say the
	// message is about this project's mail.
	TopicARN string
	// Fetch fetches a signing certificate.
	Fetch CertFetcher
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxAge bounds the message's Timestamp; default DefaultMaxAge.
	MaxAge time.Duration
	// Certs caches parsed certificates; nil for none. Share one across
	// verifiers.
	Certs *CertCache
}

// CertCache holds parsed SNS signing certificates by URL. Its zero value
// is ready; it is safe for concurrent use.
type CertCache struct {
	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

func (c *CertCache) get(u string) *x509.Certificate {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.certs[u]
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
	c.certs[u] = cert
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

// snsHost is AWS's SNS endpoint host pattern.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

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
	u, err := CheckSNSURL(raw)
	if err != nil || u.RawQuery != "" || !strings.HasSuffix(u.Path, ".pem") {
		return fmt.Errorf("%w: %q is not an SNS certificate URL", ErrCertificate, raw)
	}
	return nil
}

// CheckSNSURL refuses a URL that is not https on an SNS host
// (sns.<region>.amazonaws.com) without user or port: the only URLs an
// SNS message may make mailgate fetch (its certificate, its
// SubscribeURL).
func CheckSNSURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" || !snsHost.MatchString(u.Hostname()) {
		return nil, fmt.Errorf("%w: %q is not an SNS URL", ErrCertificate, raw)
	}
	return u, nil
}

// cert returns the certificate at raw, from the cache or fetched.
func (v *SNS) cert(ctx context.Context, raw string) (*x509.Certificate, error) {
	if err := CheckCertURL(raw); err != nil {
		return nil, err
	}
	if c := v.Certs.get(raw); c != nil {
		return c, nil
	}
	if v.Fetch == nil {
		return nil, fmt.Errorf("%w: no fetcher", ErrCertificate)
	}
	b, err := v.Fetch(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertUnavailable, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: not PEM", ErrCertificate)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	if now := v.now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, fmt.Errorf("%w: expired or not yet valid", ErrCertificate)
	}
	v.Certs.put(raw, c)
	return c, nil
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
}

// sesSeverity is the verdict of SES's bounceType: Permanent (SES
// suppresses the address), Transient; Undetermined gives none.
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
	}
	return out, nil
}
