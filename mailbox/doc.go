// Package mailbox reads one bounce/reply mailbox over IMAP (RFC 3501, with
// IDLE RFC 2177 and MOVE RFC 6851, via emersion/go-imap/v2) or POP3
// (RFC 1939 with CAPA RFC 2449 and STLS RFC 2595, written here on
// net/textproto because no Go POP3 client is served by the module proxy).
//
// It owns the mailbox protocols only: parsing a MAILGATE_MAILBOXES entry,
// connecting with TLS, listing and downloading messages with stable ids,
// acknowledging processed messages (\Seen and move, or DELE when
// configured) and waiting for new mail. It does not remember which ids were
// processed (the caller does, durably, and passes a skip function), and it
// does not parse or classify messages (package bounce) or hold the
// one-poller-per-mailbox lock (package inbound).
//
// A Source is used by one goroutine at a time; its methods serialise on a
// mutex. Passwords never appear in errors, logs or Name.
package mailbox
