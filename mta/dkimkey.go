package mta

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
)

// KeyAlgorithm is "rsa", "ed25519", or "" for any other key type; it is the
// a= algorithm family of a signature and the metrics label. Key generation,
// storage and DNS records belong to package dkimkey.
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
