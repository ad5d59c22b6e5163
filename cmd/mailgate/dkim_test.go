package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/dkimkey"
)

func TestKeygen(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for _, alg := range []string{dkimkey.RSA, dkimkey.Ed25519} {
		t.Run(alg, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := runKeygen(&stdout, &stderr, keygenOptions{algorithm: alg, domain: "shop.example"}, now); err != nil {
				t.Fatalf("keygen: %v", err)
			}
			checkKeyAndRecord(t, stdout.Bytes(), stderr.String(), "mg202611._domainkey.shop.example")
		})
	}
	t.Run("out file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dkim.pem")
		var stdout, stderr bytes.Buffer
		o := keygenOptions{algorithm: dkimkey.Ed25519, selector: "s1", out: path}
		if err := runKeygen(&stdout, &stderr, o, now); err != nil {
			t.Fatalf("keygen: %v", err)
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout %q, want nothing", stdout.String())
		}
		info, err := os.Stat(path)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, mode %v", err, info.Mode())
		}
		pemKey, _ := os.ReadFile(path)
		checkKeyAndRecord(t, pemKey, stderr.String(), "s1._domainkey")
		if err := runKeygen(&stdout, &stderr, o, now); err == nil {
			t.Error("keygen overwrote an existing key file")
		}
	})
	if err := runKeygen(&bytes.Buffer{}, &bytes.Buffer{}, keygenOptions{algorithm: "dsa"}, now); err == nil {
		t.Error("keygen accepted algorithm dsa")
	}
}

func checkKeyAndRecord(t *testing.T, pemKey []byte, stderr, name string) {
	t.Helper()
	key, err := dkimkey.ParsePrivateKey(pemKey)
	if err != nil {
		t.Fatalf("private key: %v", err)
	}
	record, _ := dkimkey.DNSRecordValue(key.Public())
	if want := name + " TXT " + record + "\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if strings.Contains(stderr, "PRIVATE") {
		t.Error("stderr shows the private key")
	}
}
