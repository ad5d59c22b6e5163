// Package mta owns everything that turns a stored message into bytes on an
// upstream relay's socket: MIME building (Build), DKIM signing (Signer, RFC
// 6376 and RFC 8463), and the SMTP client (Pool per upstream relay, Relays
// for ordered failover) with STARTTLS or implicit TLS, AUTH, RFC 5321
// §4.5.3.2 timeouts and one typed outcome, *Error; on a Postmark, SendGrid
// or Mailgun relay (RelayConfig.Provider) the message goes out with that
// provider's header carrying its mailgate id (Envelope.MailgateID).
//
// It does not own what to send or when: loading messages, suppressions,
// VERP tokens, rate limits, retries and recording outcomes belong to the
// worker. mta is a leaf package: it imports no other mailgate package, keeps
// no package-level mutable state, and takes its clock and randomness from
// its callers where tests need them exact.
package mta
