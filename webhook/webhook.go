// Package webhook holds what mailgate sends to a customer's webhook
// endpoint: the payload (the Standard Webhooks shape,
// https://www.standardwebhooks.com), its signature (HMAC-SHA256 "v1",
// through the Standard Webhooks library; several during a secret rotation)
// and the HTTP POST itself, behind a guard that refuses private, loopback
// and link-local addresses at connect time (SSRF), so a customer cannot
// make the gateway call into its own network.
package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Header names of a delivery (Standard Webhooks).
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// secretBytes is the length of a new secret's key (Standard Webhooks
// asks for 24 to 64 bytes).
const secretBytes = 32

// Payload is the body of a delivery: {"type", "timestamp", "data"}.
// Fields may be added to it and to data; receivers ignore the fields they
// do not know, order a message's events by data.sequence and deduplicate
// by the webhook-id header (a delivery may arrive more than once, and out
// of order).
type Payload struct {
	// Type is the event type, e.g. "message.sent".
	Type string `json:"type"`
	// Timestamp is when the event happened (RFC 3339).
	Timestamp time.Time `json:"timestamp"`
	// Data is the event's data: for a message's event its message_id,
	// recipient, the message's tags and metadata, the per-message
	// sequence, and the type-specific fields (a bounce: type hard|soft,
	// reason, status, diagnostic; a reply: from, subject, text,
	// in_reply_to; a delivery attempt: smtp_code, smtp_response); for
	// webhook.disabled: webhook_id, url, reason; for webhook.test:
	// webhook_id.
	Data json.RawMessage `json:"data"`
}

// NewSecret makes a signing secret: "whsec_" and the base64 of 32 random
// bytes.
func NewSecret() (string, error) {
	key := make([]byte, secretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ValidSecret reports whether s is a secret NewSecret could have made.
func ValidSecret(s string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	return strings.HasPrefix(s, SecretPrefix) && err == nil && len(key) >= 24 && len(key) <= 64
}

// Sign is the webhook-signature header value for one delivery: a "v1,"
// signature per secret, space-separated (several while a secret is being
// rotated: a receiver accepts the delivery when any one verifies).
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if !ValidSecret(s) {
			return "", errors.New("sign webhook: not a whsec_ secret of 24 to 64 bytes")
		}
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return "", fmt.Errorf("webhook secret: %w", err)
		}
		sig, err := wh.Sign(id, ts, body)
		if err != nil {
			return "", fmt.Errorf("sign webhook: %w", err)
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return "", errors.New("sign webhook: no secret")
	}
	return strings.Join(sigs, " "), nil
}

// Headers are the Standard Webhooks headers of one delivery.
func Headers(secrets []string, id string, ts time.Time, body []byte) (map[string]string, error) {
	sig, err := Sign(secrets, id, ts, body)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		HeaderID:        id,
		HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		HeaderSignature: sig,
	}, nil
}

// TestEventType is the type of the payload POST /v1/webhooks/{id}/test
// sends.
const TestEventType = "webhook.test"

// SealAAD is the additional data an endpoint's secret is sealed with
// under the master key: it binds the sealed secret to its endpoint, so a
// sealed value copied to another endpoint's row does not open.
func SealAAD(endpointID string) []byte { return []byte("mailgate webhook secret\x00" + endpointID) }
