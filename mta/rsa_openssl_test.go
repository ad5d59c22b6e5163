//go:build cgo && openssl

package mta

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"strings"
	"testing"
)

// TestOpenSSLFailureClearsErrorQueue: a failed key load or signature
// leaves libcrypto's per-thread error queue empty, so that the next
// OpenSSL call on that thread (ours or another cgo library's) does not
// find a stale error, and the Go error carries libcrypto's reason.
func TestOpenSSLFailureClearsErrorQueue(t *testing.T) {
	runtime.LockOSThread() // the queue is per thread: check the thread that failed
	defer runtime.UnlockOSThread()
	if opensslErrorQueued() {
		t.Fatal("the error queue holds an error before the test")
	}
	if loadPKCS8([]byte("not a PKCS #8 key")) != nil {
		t.Fatal("libcrypto loaded a garbage key")
	}
	if opensslErrorQueued() {
		t.Error("a refused key left an error in the thread's queue")
	}

	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := AccelerateKey(priv).(*opensslRSA)
	if !ok {
		t.Fatal("AccelerateKey did not return the OpenSSL key")
	}
	s.size = 16 // a signature buffer too small: EVP_PKEY_sign fails
	digest := sha256.Sum256([]byte("mg"))
	_, err = s.Sign(nil, digest[:], crypto.SHA256)
	if err == nil {
		t.Fatal("signing into a 16-byte buffer succeeded")
	}
	if !strings.Contains(err.Error(), "signing failed: error:") {
		t.Errorf("error %q does not carry libcrypto's reason", err)
	}
	if opensslErrorQueued() {
		t.Error("a failed signature left an error in the thread's queue")
	}
}
