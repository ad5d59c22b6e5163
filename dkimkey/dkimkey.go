// Package dkimkey owns DKIM key pairs as mailgate stores and publishes
// them: generation (RSA-2048 and Ed25519), the private key as PKCS#8 PEM
// and the public key as the DNS TXT record value of RFC 6376 §3.6.1
// ("v=DKIM1; k=rsa; p=…"), with the Ed25519 form of RFC 8463 §4.2.
//
// It does not sign messages (package mta does) and holds no state. It is
// written on the standard library's crypto packages: go-msgauth signs and
// verifies but neither generates keys nor formats key records.
package dkimkey

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

// Algorithms mailgate signs with, as named in the API and the k= tag.
const (
	RSA     = "rsa"
	Ed25519 = "ed25519"
)

// RSABits is the size of generated RSA keys (RFC 8301 §3.2 asks for at
// least 1024 and recommends 2048).
const RSABits = 2048

// minRSABits is the smallest RSA key ParsePrivateKey accepts (RFC 8301 §3.2).
const minRSABits = 1024

// Sentinel errors.
var (
	// ErrAlgorithm: an algorithm other than "rsa" or "ed25519".
	ErrAlgorithm = errors.New("unsupported DKIM key algorithm (want rsa or ed25519)")
	// ErrBadKey: a PEM block that is not a usable DKIM private key.
	ErrBadKey = errors.New("not a PEM private key mailgate can sign with")
)

// GenerateKey makes a new key pair: "rsa" (2048 bits) or "ed25519".
func GenerateKey(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case RSA:
		k, err := rsa.GenerateKey(rand.Reader, RSABits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		return k, nil
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrAlgorithm, algorithm)
}

// Algorithm names the algorithm of a public or private key ("rsa",
// "ed25519"), or "" for any other.
func Algorithm(key any) string {
	switch key.(type) {
	case *rsa.PublicKey, *rsa.PrivateKey:
		return RSA
	case ed25519.PublicKey, ed25519.PrivateKey, *ed25519.PrivateKey:
		return Ed25519
	}
	return ""
}

// DNSRecordValue is the TXT record value publishing pub: "v=DKIM1; k=rsa;
// p=<base64 DER SubjectPublicKeyInfo>" (RFC 6376 §3.6.1; the
// SubjectPublicKeyInfo form is what verifiers, OpenDKIM's tools and
// go-msgauth read) or "v=DKIM1; k=ed25519; p=<base64 of the raw 32-byte
// key>" (RFC 8463 §4.2).
func DNSRecordValue(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("marshal rsa public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: ed25519 public key of %d bytes", ErrAlgorithm, len(k))
		}
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k), nil
	}
	return "", fmt.Errorf("%w: public key %T", ErrAlgorithm, pub)
}

// MarshalPrivateKey encodes key as a PKCS#8 PEM block ("PRIVATE KEY").
func MarshalPrivateKey(key crypto.Signer) ([]byte, error) {
	if Algorithm(key) == "" {
		return nil, fmt.Errorf("%w: private key %T", ErrAlgorithm, key)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey reads the first PEM block of b: PKCS#8 ("PRIVATE KEY")
// or, for RSA keys made by other tools, PKCS#1 ("RSA PRIVATE KEY"). RSA
// keys under 1024 bits are refused (RFC 8301 §3.2). Errors never quote
// the key.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block type %q", ErrBadKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s block does not parse", ErrBadKey, block.Type)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("%w: rsa key of %d bits, want at least %d", ErrBadKey, k.N.BitLen(), minRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: key type %T", ErrBadKey, key)
}

// SealAAD is the additional data a domain's private key is sealed with
// (keyring.Seal / Open): "dkim:<domain>:<selector>", so that a sealed key
// copied to another domain or selector does not open.
func SealAAD(domain, selector string) []byte {
	return []byte("dkim:" + domain + ":" + selector)
}
