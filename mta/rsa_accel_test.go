package mta

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"sync"
	"testing"
)

// TestAccelerateKey checks that an accelerated RSA key makes exactly the
// signatures Go's RSA makes (PKCS #1 v1.5 is deterministic), from many
// goroutines at once, and that other keys come back unchanged.
func TestAccelerateKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fast := AccelerateKey(priv)
	t.Logf("RSA backend: %s", RSABackend())
	if RSABackend() == "openssl" && fast == crypto.Signer(priv) {
		t.Fatal("openssl build returned the Go key")
	}
	if pub, ok := fast.Public().(*rsa.PublicKey); !ok || !pub.Equal(&priv.PublicKey) {
		t.Fatalf("Public() = %T, want the key's *rsa.PublicKey", fast.Public())
	}
	tests := []struct {
		name string
		hash crypto.Hash
		sum  func([]byte) []byte
	}{
		{"sha256", crypto.SHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"sha1", crypto.SHA1, func(b []byte) []byte { s := sha1.Sum(b); return s[:] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					digest := tt.sum([]byte{byte(i), 'm', 'g'})
					want, err := rsa.SignPKCS1v15(nil, priv, tt.hash, digest)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := fast.Sign(rand.Reader, digest, tt.hash)
					if err != nil {
						t.Errorf("sign: %v", err)
						return
					}
					if !bytes.Equal(got, want) {
						t.Errorf("signature %d differs from Go's", i)
					}
				})
			}
			wg.Wait()
		})
	}
	if _, err := fast.Sign(rand.Reader, []byte("short"), crypto.SHA256); err == nil {
		t.Error("a digest of the wrong length was signed")
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got := AccelerateKey(edKey); !bytes.Equal(got.(ed25519.PrivateKey), edKey) {
		t.Error("an Ed25519 key was changed")
	}
}
