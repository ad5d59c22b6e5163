//go:build !(cgo && openssl)

package mta

import "crypto"

const rsaBackend = "go"

func accelerate(k crypto.Signer) crypto.Signer { return k }
