// Package feedback verifies and reads the bounce, complaint, delivery and
// delay notifications an upstream provider posts about mail relayed through it:
// Amazon SES through SNS, SendGrid's signed event webhook, Mailgun's
// webhooks and Postmark's. Each provider has a verifier that checks the
// provider's own authentication scheme (a signature, an HMAC or HTTP basic
// credentials) and refuses stale or replayed notifications, and a parser
// that turns a verified body into per-recipient Events.
//
// It owns no storage and makes no network call of its own: the SNS signing
// certificate (and the issuer certificate it names) is fetched through a
// CertFetcher the caller injects (in production the webhook package's
// SSRF-guarded client), used Mailgun
// tokens are remembered in the Redis the caller passes (RedisTokens), and
// tying an event to a stored message and applying its effects is the
// caller's.
package feedback
