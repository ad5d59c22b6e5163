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

// SNS signs SNS messages with an RSA key and a self-signed certificate.
type SNS struct {
	key     *rsa.PrivateKey
	certPEM []byte
	// Fetches counts certificate fetches.
	Fetches atomic.Int64
}

// NewSNS makes a key and certificate valid around now.
func NewSNS(now time.Time) (*SNS, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &SNS{key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Fetch serves the certificate for CertURL (a feedback.CertFetcher).
func (s *SNS) Fetch(_ context.Context, rawURL string) ([]byte, error) {
	s.Fetches.Add(1)
	if rawURL != CertURL {
		return nil, fmt.Errorf("feedbacktest: no certificate at %s", rawURL)
	}
	return s.certPEM, nil
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
