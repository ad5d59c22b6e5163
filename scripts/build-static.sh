#!/usr/bin/env bash
# build-static.sh OUT: builds the static mailgate binary of the container
# image into OUT. The Dockerfile runs this script, and `make test` runs it too
# (deploy/image_test.go checks what it built), so the image's build cannot
# drift from what the tests see.
#
# The binary is pure Go: CGO_ENABLED=0 and no "openssl" tag, so DKIM's RSA
# signatures use Go's crypto/rsa (mta/rsa_go.go) and the binary needs no
# libc or libcrypto (the distroless static image has neither). -trimpath
# keeps build paths out of it; -s -w drop the symbol and DWARF tables.
# VERSION (default "dev") becomes `mailgate version`'s answer. GOFLAGS from
# the caller (the test scripts set -tags=openssl) is ignored on purpose.
# Needs only bash and go: no lib.sh, so that it runs in the image's build
# stage as it is.
set -euo pipefail

if (($# != 1)); then
	printf 'usage: %s OUT\n' "$0" >&2
	exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CGO_ENABLED=0 GOFLAGS= go build -trimpath -ldflags "-s -w -X main.version=${VERSION:-dev}" -o "$1" ./cmd/mailgate
