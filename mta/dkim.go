package mta

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMKey is one signing key of a sender domain.
type DKIMKey struct {
	// Domain is the signing domain (the d= tag), in A-label form.
	Domain string
	// Selector is the s= tag; the public key is published at
	// Selector._domainkey.Domain.
	Selector string
	// Signer is an *rsa.PrivateKey or an ed25519.PrivateKey.
	Signer crypto.Signer
}

// DefaultHeaderKeys is the header set signed by default (RFC 6376 §5.4.1),
// From listed twice so that a second From added later breaks the signature
// (oversigning, RFC 6376 §8.15). It returns a new slice on each call.
func DefaultHeaderKeys() []string {
	return []string{
		"From", "From", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
		"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
		"Feedback-ID", "X-Mailgate-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
	}
}

// SignerConfig configures a Signer.
type SignerConfig struct {
	// HeaderKeys are the header fields to sign, in order; a name listed
	// twice is oversigned. Only names present in the message are put in
	// h= (besides the repeats); From is always signed. Default
	// DefaultHeaderKeys().
	HeaderKeys []string
	// Now is the clock for the x= expiration and for Observe. Default
	// time.Now. (go-msgauth stamps t= from the system clock itself.)
	Now func() time.Time
	// Expiration is added to Now for the x= tag; 0 (default) writes no x=.
	Expiration time.Duration
	// Observe, when set, receives the duration of each signature with its
	// key algorithm ("rsa" or "ed25519"), for metrics.
	Observe func(algorithm string, d time.Duration)
}

// Signer adds DKIM-Signature fields to built messages. It is safe for
// concurrent use.
type Signer struct {
	cfg SignerConfig
}

// NewSigner returns a Signer with cfg's defaults filled in.
func NewSigner(cfg SignerConfig) *Signer {
	if cfg.HeaderKeys == nil {
		cfg.HeaderKeys = DefaultHeaderKeys()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Signer{cfg: cfg}
}

// Sign returns raw with one DKIM-Signature per key prepended (RFC 6376
// §5.6), each relaxed/relaxed with rsa-sha256 or ed25519-sha256 (RFC 8463)
// by the key's type. Each signature covers the message as given, not the
// other signatures. With no keys, raw is returned unchanged.
func (s *Signer) Sign(raw []byte, keys []DKIMKey) ([]byte, error) {
	if len(keys) == 0 {
		return raw, nil
	}
	headerKeys := s.headerKeys(raw)
	var sigs []string
	for _, k := range keys {
		sig, err := s.signOne(raw, k, headerKeys)
		if err != nil {
			return nil, fmt.Errorf("dkim sign for %s selector %s: %w", k.Domain, k.Selector, err)
		}
		sigs = append(sigs, sig)
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 600*len(sigs))
	for i := len(sigs) - 1; i >= 0; i-- {
		out.WriteString(sigs[i])
	}
	out.Write(raw)
	return out.Bytes(), nil
}

// signOne computes the DKIM-Signature field (with its CRLF) for one key.
func (s *Signer) signOne(raw []byte, k DKIMKey, headerKeys []string) (string, error) {
	if k.Signer == nil || k.Domain == "" || k.Selector == "" {
		return "", errors.New("key needs a domain, a selector and a private key")
	}
	start := s.cfg.Now()
	opts := &dkim.SignOptions{
		Domain:                 k.Domain,
		Selector:               k.Selector,
		Signer:                 k.Signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             headerKeys,
	}
	if s.cfg.Expiration > 0 {
		opts.Expiration = start.Add(s.cfg.Expiration)
	}
	ds, err := dkim.NewSigner(opts)
	if err != nil {
		return "", err
	}
	if _, err := ds.Write(raw); err != nil {
		ds.Close()
		return "", err
	}
	if err := ds.Close(); err != nil {
		return "", err
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(KeyAlgorithm(k.Signer), s.cfg.Now().Sub(start))
	}
	return ds.Signature(), nil
}

// headerKeys is the configured list reduced to the fields present in raw's
// header, keeping repeats (oversigning) and always keeping From.
func (s *Signer) headerKeys(raw []byte) []string {
	present := headerNames(raw)
	keys := make([]string, 0, len(s.cfg.HeaderKeys)+1)
	from := false
	for _, k := range s.cfg.HeaderKeys {
		if present[strings.ToLower(k)] {
			keys = append(keys, k)
		}
		from = from || strings.EqualFold(k, "From")
	}
	if !from {
		keys = append([]string{"From"}, keys...)
	}
	return keys
}

// headerNames is the set of lower-cased field names in the header section
// (RFC 5322 §2.2: a line that does not start with WSP starts a field).
func headerNames(raw []byte) map[string]bool {
	names := map[string]bool{}
	for len(raw) > 0 {
		line, rest, _ := bytes.Cut(raw, []byte("\n"))
		raw = rest
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			names[strings.ToLower(string(bytes.TrimSpace(name)))] = true
		}
	}
	return names
}
