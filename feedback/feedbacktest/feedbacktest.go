// Package feedbacktest signs provider notifications the way each provider
// does, with keys made on the spot, so tests of package feedback and of
// the API can post notifications that verify (or, altered, that do not)
// without reaching a provider.
package feedbacktest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // SNS SignatureVersion 1
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"time"
)

// CertURL is the signing certificate URL the SNS signer names.
const CertURL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"

// TopicARN is the topic the SNS signer's messages come from.
const TopicARN = "arn:aws:sns:eu-west-1:123456789012:mailgate-feedback"

// IssuerURL is where the SNS signer's certificate says its issuer
// certificate is (Authority Information Access), as AWS's do: SNS serves
// the signing certificate without its chain.
const IssuerURL = "http://crt.test.amazontrust.com/test.cer"

// SNS signs SNS messages with an RSA key whose certificate chains, through
// an intermediate, to a root of its own (Roots).
type SNS struct {
	key     *rsa.PrivateKey
	certPEM []byte
	ca      *authority
	// Fetches counts certificate fetches (signing and issuer).
	Fetches atomic.Int64
}

// authority is a root and the intermediate that issues signing
// certificates.
type authority struct {
	roots     *x509.CertPool
	interDER  []byte
	inter     *x509.Certificate
	interKey  *rsa.PrivateKey
	notBefore time.Time
}

// NewSNS makes a root, an intermediate and a signing key and certificate,
// valid around now.
func NewSNS(now time.Time) (*SNS, error) {
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	rootTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTpl, rootTpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	interKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	interTpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	interDER, err := x509.CreateCertificate(rand.Reader, interTpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return newSigner(&authority{roots: roots, interDER: interDER, inter: inter, interKey: interKey, notBefore: now.Add(-time.Hour)},
		now.Add(24*time.Hour))
}

// newSigner makes a signing key and a certificate ca issues, valid until
// notAfter.
func newSigner(ca *authority, notAfter time.Time) (*SNS, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		DNSNames: []string{"sns.amazonaws.com"}, NotBefore: ca.notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, IssuingCertificateURL: []string{IssuerURL}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.inter, &key.PublicKey, ca.interKey)
	if err != nil {
		return nil, err
	}
	return &SNS{key: key, ca: ca, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Sibling is another signer, with a key of its own, whose certificate
// the same intermediate issues, valid until notAfter.
func (s *SNS) Sibling(notAfter time.Time) (*SNS, error) { return newSigner(s.ca, notAfter) }

// Roots is a pool holding the signer's root: a verifier's feedback.SNS.Roots.
func (s *SNS) Roots() *x509.CertPool { return s.ca.roots }

// Fetch serves the signing certificate at CertURL and the intermediate
// (DER, as AIA URLs serve it) at IssuerURL (a feedback.CertFetcher).
func (s *SNS) Fetch(_ context.Context, rawURL string) ([]byte, error) {
	s.Fetches.Add(1)
	switch rawURL {
	case CertURL:
		return s.certPEM, nil
	case IssuerURL:
		return s.ca.interDER, nil
	}
	return nil, fmt.Errorf("feedbacktest: no certificate at %s", rawURL)
}

// Notification is an SNS Notification of message signed with version
// ("1" or "2") at ts.
func (s *SNS) Notification(id, message string, ts time.Time, version string) []byte {
	m := map[string]string{"Type": "Notification", "MessageId": id, "TopicArn": TopicARN, "Message": message,
		"Timestamp": ts.UTC().Format("2006-01-02T15:04:05.000Z"), "SignatureVersion": version, "SigningCertURL": CertURL,
		"UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"}
	toSign := "Message\n" + m["Message"] + "\nMessageId\n" + id + "\nTimestamp\n" + m["Timestamp"] +
		"\nTopicArn\n" + TopicARN + "\nType\nNotification\n"
	m["Signature"] = s.sign(toSign, version)
	b, _ := json.Marshal(m)
	return b
}

// Confirmation is an SNS SubscriptionConfirmation signed at ts.
func (s *SNS) Confirmation(id, subscribeURL string, ts time.Time) []byte {
	m := map[string]string{"Type": "SubscriptionConfirmation", "MessageId": id, "Token": "2336412f37fb687f5d51e6e2425c464d",
		"TopicArn": TopicARN, "Message": "You have chosen to subscribe to the topic " + TopicARN,
		"SubscribeURL": subscribeURL, "Timestamp": ts.UTC().Format("2006-01-02T15:04:05.000Z"),
		"SignatureVersion": "1", "SigningCertURL": CertURL}
	var b strings.Builder
	for _, k := range []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"} {
		b.WriteString(k + "\n" + m[k] + "\n")
	}
	m["Signature"] = s.sign(b.String(), "1")
	out, _ := json.Marshal(m)
	return out
}

func (s *SNS) sign(toSign, version string) string {
	var sig []byte
	if version == "1" {
		d := sha1.Sum([]byte(toSign)) //nolint:gosec // SNS SignatureVersion 1
		sig, _ = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(toSign))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, d[:])
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// SendGrid signs event webhook bodies with an ECDSA P-256 key.
type SendGrid struct {
	key *ecdsa.PrivateKey
	// PublicKey is the verification key as SendGrid shows it.
	PublicKey string
}

// NewSendGrid makes a key pair.
func NewSendGrid() (*SendGrid, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &SendGrid{key: key, PublicKey: base64.StdEncoding.EncodeToString(der)}, nil
}

// Sign returns the signature and timestamp headers for body at ts.
func (s *SendGrid) Sign(body []byte, ts time.Time) (signature, timestamp string) {
	timestamp = fmt.Sprint(ts.Unix())
	d := sha256.Sum256(append([]byte(timestamp), body...))
	sig, _ := ecdsa.SignASN1(rand.Reader, s.key, d[:])
	return base64.StdEncoding.EncodeToString(sig), timestamp
}

// Mailgun fills the signature object of a Mailgun body template (whose
// signature fields read TIMESTAMP, TOKEN and SIGNATURE) for key at ts.
func Mailgun(template []byte, key, token string, ts time.Time) []byte {
	stamp := fmt.Sprint(ts.Unix())
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(stamp + token))
	r := strings.NewReplacer(`"TIMESTAMP"`, `"`+stamp+`"`, `"TOKEN"`, `"`+token+`"`,
		`"SIGNATURE"`, `"`+hex.EncodeToString(mac.Sum(nil))+`"`)
	return []byte(r.Replace(string(template)))
}
