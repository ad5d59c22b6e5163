package dkimkey

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

const testMessage = "From: Shop <orders@shop.example>\r\n" +
	"To: ann@example.org\r\n" +
	"Subject: Your order\r\n" +
	"Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n" +
	"Message-ID: <1@shop.example>\r\n" +
	"\r\n" +
	"Hello\r\n"

// TestSignVerify generates a key, publishes its record, round-trips the
// private key through PEM, signs with go-msgauth and verifies with
// go-msgauth reading the record we produced.
func TestSignVerify(t *testing.T) {
	for _, alg := range []string{RSA, Ed25519} {
		t.Run(alg, func(t *testing.T) {
			key, err := GenerateKey(alg)
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			if Algorithm(key) != alg || Algorithm(key.Public()) != alg {
				t.Errorf("Algorithm = %q / %q, want %q", Algorithm(key), Algorithm(key.Public()), alg)
			}
			record, err := DNSRecordValue(key.Public())
			if err != nil {
				t.Fatalf("DNSRecordValue: %v", err)
			}
			if want := "v=DKIM1; k=" + alg + "; p="; !strings.HasPrefix(record, want) {
				t.Errorf("record %q, want prefix %q", record, want)
			}
			pemBytes, err := MarshalPrivateKey(key)
			if err != nil {
				t.Fatalf("MarshalPrivateKey: %v", err)
			}
			parsed, err := ParsePrivateKey(pemBytes)
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			signed := sign(t, parsed, "mg202611")
			verify(t, signed, map[string]string{"mg202611._domainkey.shop.example": record})

			other, _ := GenerateKey(alg)
			otherRecord, _ := DNSRecordValue(other.Public())
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
				LookupTXT: func(string) ([]string, error) { return []string{otherRecord}, nil }})
			if err != nil || len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("signature verified against another key's record")
			}
		})
	}
}

func TestEd25519RecordIsRawKey(t *testing.T) {
	key, err := GenerateKey(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	record, _ := DNSRecordValue(key.Public())
	p := record[strings.LastIndex(record, "p=")+2:]
	if len(p) != 44 { // base64 of 32 bytes (RFC 8463 §4.2)
		t.Errorf("p= is %d characters, want 44: %s", len(p), p)
	}
}

func sign(t *testing.T, key crypto.Signer, selector string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(testMessage), &dkim.SignOptions{
		Domain: "shop.example", Selector: selector, Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
	})
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return out.Bytes()
}

func verify(t *testing.T, msg []byte, records map[string]string) {
	t.Helper()
	lookup := func(domain string) ([]string, error) {
		if r, ok := records[domain]; ok {
			return []string{r}, nil
		}
		return nil, errors.New("no such record")
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(vs) != 1 || vs[0].Err != nil {
		for _, v := range vs {
			t.Errorf("signature of %s: %v", v.Domain, v.Err)
		}
		t.Fatalf("%d signatures", len(vs))
	}
}

func TestParsePrivateKey(t *testing.T) {
	rsaKey, err := GenerateKey(RSA)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Bytes: x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))})
	t.Run("pkcs1", func(t *testing.T) {
		k, err := ParsePrivateKey(pkcs1)
		if err != nil || Algorithm(k) != RSA {
			t.Fatalf("ParsePrivateKey = %T, %v", k, err)
		}
	})
	for name, in := range map[string]string{
		"empty":       "",
		"no pem":      "just text",
		"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"garbage der": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePrivateKey([]byte(in)); !errors.Is(err, ErrBadKey) {
				t.Errorf("ParsePrivateKey = %v, want ErrBadKey", err)
			}
		})
	}
	if _, err := GenerateKey("dsa"); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("GenerateKey(dsa) = %v, want ErrAlgorithm", err)
	}
}
