//go:build cgo && openssl

package mta

// RSA PKCS #1 v1.5 signing through libcrypto (OpenSSL 3), for DKIM's
// rsa-sha256 (RFC 6376 §3.3.1). Written by hand: the Go bindings to
// OpenSSL served here either are not available or sign only data they
// hash themselves, while go-msgauth hands its crypto.Signer a digest.

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

// Every function here leaves the calling thread's error queue empty, as it
// found it: libcrypto queues errors per thread and never drops them, so a
// failure left behind would be reported by the next OpenSSL call that
// thread makes, ours or another cgo library's, as its own.

static EVP_PKEY *mg_load_pkcs8(const unsigned char *der, long len) {
	const unsigned char *p = der;
	EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &p, len);
	ERR_clear_error(); // the decoders it tried queue errors even on success
	return key;
}

// mg_sign_digest signs a SHA-256 or SHA-1 digest with PKCS #1 v1.5
// padding; it returns 1 on success, else 0 with libcrypto's reason in why.
static int mg_sign_digest(EVP_PKEY *key, int sha1, const unsigned char *digest, size_t dlen,
		unsigned char *sig, size_t *slen, char *why, size_t whylen) {
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int ok = ctx != NULL
		&& EVP_PKEY_sign_init(ctx) > 0
		&& EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0
		&& EVP_PKEY_CTX_set_signature_md(ctx, sha1 ? EVP_sha1() : EVP_sha256()) > 0
		&& EVP_PKEY_sign(ctx, sig, slen, digest, dlen) > 0;
	EVP_PKEY_CTX_free(ctx);
	if (!ok) ERR_error_string_n(ERR_peek_last_error(), why, whylen);
	ERR_clear_error();
	return ok;
}

static void mg_free(EVP_PKEY *key) { EVP_PKEY_free(key); }

// mg_err_queued reports whether the calling thread's error queue holds an
// error.
static int mg_err_queued(void) { return ERR_peek_error() != 0; }
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

const rsaBackend = "openssl"

// opensslRSA is an RSA private key held by libcrypto. An EVP_PKEY may be
// used by many threads at once when each has its own EVP_PKEY_CTX, as here.
type opensslRSA struct {
	pub  *rsa.PublicKey
	pkey *C.EVP_PKEY
	size int
}

func accelerate(k crypto.Signer) crypto.Signer {
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return k
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return k
	}
	pkey := loadPKCS8(der)
	clear(der)
	if pkey == nil {
		return k // libcrypto refused the key: Go's RSA signs it
	}
	s := &opensslRSA{pub: &priv.PublicKey, pkey: pkey, size: priv.Size()}
	runtime.AddCleanup(s, func(p *C.EVP_PKEY) { C.mg_free(p) }, pkey)
	return s
}

// loadPKCS8 is libcrypto's key for a PKCS #8 DER private key, or nil when
// libcrypto refuses it.
func loadPKCS8(der []byte) *C.EVP_PKEY {
	return C.mg_load_pkcs8((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
}

// opensslErrorQueued reports whether libcrypto's error queue of the
// calling OS thread holds an error; a test locks its goroutine to one
// thread around the failing call and this check.
func opensslErrorQueued() bool { return C.mg_err_queued() != 0 }

// Public implements crypto.Signer.
func (s *opensslRSA) Public() crypto.PublicKey { return s.pub }

// Sign implements crypto.Signer for PKCS #1 v1.5 over a SHA-256 (or
// SHA-1) digest; rand is not used (the padding is deterministic).
func (s *opensslRSA) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, errors.New("openssl rsa: PSS is not supported")
	}
	h := opts.HashFunc()
	if (h != crypto.SHA256 && h != crypto.SHA1) || len(digest) != h.Size() {
		return nil, fmt.Errorf("openssl rsa: unsupported hash %v or digest length %d", h, len(digest))
	}
	sig := make([]byte, s.size)
	slen := C.size_t(len(sig))
	sha1 := C.int(0)
	if h == crypto.SHA1 {
		sha1 = 1
	}
	var why [256]C.char
	ok := C.mg_sign_digest(s.pkey, sha1, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &slen, &why[0], C.size_t(len(why)))
	runtime.KeepAlive(s)
	if ok != 1 {
		return nil, fmt.Errorf("openssl rsa: signing failed: %s", C.GoString(&why[0]))
	}
	return sig[:slen], nil
}
