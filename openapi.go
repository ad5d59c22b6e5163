// Package mailgate holds the files of the repository root that the binary
// embeds: the OpenAPI contract. It owns no behaviour; package api loads the
// contract to validate requests and its tests check responses against it.
package mailgate

import _ "embed"

// OpenAPI is openapi.yaml, the OpenAPI 3.1 contract of the HTTP API: every
// route, request body, response and problem+json error. It is the source of
// truth the server is checked against; treat it as read-only.
//
//go:embed openapi.yaml
var OpenAPI []byte
