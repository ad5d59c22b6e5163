package mta

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// RSAKeyBits is the size of generated RSA keys (RFC 8301 §3.2 asks for at
// least 1024 bits and recommends 2048).
const RSAKeyBits = 2048

// minRSABits is the smallest RSA key ParsePrivateKey accepts (RFC 8301 §3.2).
const minRSABits = 1024

// GenerateKey makes a new DKIM private key: algorithm "rsa" (2048 bits) or
// "ed25519" (RFC 8463).
func GenerateKey(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, RSAKeyBits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		return k, nil
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unknown dkim key algorithm %q (want rsa or ed25519)", algorithm)
	}
}

// KeyAlgorithm is "rsa", "ed25519", or "" for any other key type; it is the
// k= tag of the DNS record and the metrics label.
func KeyAlgorithm(k crypto.Signer) string {
	if k == nil {
		return ""
	}
	switch k.Public().(type) {
	case *rsa.PublicKey:
		return "rsa"
	case ed25519.PublicKey:
		return "ed25519"
	}
	return ""
}

// DNSRecordName is where the public key of selector is published:
// "selector._domainkey.domain" (RFC 6376 §3.6.2.1), without a trailing dot.
func DNSRecordName(selector, domain string) string {
	return selector + "._domainkey." + domain
}

// DNSRecordValue is the whole, unquoted TXT record value for pub (RFC 6376
// §3.6.1): "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or
// "v=DKIM1; k=ed25519; p=<base64 of the 32-byte key>" (RFC 8463 §4.2).
// Records longer than 255 octets must be split into several strings by
// whoever writes the zone.
func DNSRecordValue(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("encode rsa public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	default:
		return "", fmt.Errorf("unsupported dkim public key type %T", pub)
	}
}

// MarshalPrivateKey encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKey(k crypto.Signer) ([]byte, error) {
	if KeyAlgorithm(k) == "" {
		return nil, fmt.Errorf("unsupported dkim private key type %T", k)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PKCS#8 key (PEM "PRIVATE KEY" or DER), or a
// PKCS#1 "RSA PRIVATE KEY", into an RSA (at least 1024 bits) or Ed25519
// signer. Errors never include key material.
func ParsePrivateKey(pemOrDER []byte) (crypto.Signer, error) {
	der := pemOrDER
	if block, _ := pem.Decode(pemOrDER); block != nil {
		der = block.Bytes
	}
	var key any
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		var err1 error
		if key, err1 = x509.ParsePKCS1PrivateKey(der); err1 != nil {
			return nil, errors.New("parse dkim private key: not a PKCS#8 or PKCS#1 key")
		}
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("parse dkim private key: rsa key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("parse dkim private key: unsupported key type %T", key)
	}
}
