package mta

import "crypto"

// AccelerateKey returns a signer that makes the same signatures as k,
// faster where it can. Built with the "openssl" tag (and cgo), an RSA key
// signs through the system's libcrypto, about four times faster than Go's
// constant-time RSA on the machines we measured (RSA-2048: ≈0.28 ms
// against ≈0.85 ms); PKCS #1 v1.5 signatures are deterministic, so the
// bytes are identical. Other keys, and every key in builds without the
// tag, are returned unchanged. The result's Public is k's public key, so
// go-msgauth picks the algorithm from it as before.
func AccelerateKey(k crypto.Signer) crypto.Signer {
	return accelerate(k)
}

// RSABackend names what signs RSA keys returned by AccelerateKey:
// "openssl" or "go".
func RSABackend() string { return rsaBackend }
