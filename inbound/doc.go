// Package inbound owns the feedback loop's consumer: the poller that reads
// returned mail from bounce/reply mailboxes and turns it into recipient
// statuses, events and suppressions.
//
// For each mailbox (a Source, opened by package mailbox) one goroutine holds
// a Redis lock named after the mailbox, so that one poller is active per
// mailbox however many run; a second poller waits and takes over when the
// lock expires. It fetches new messages, processes each and marks them done
// in the mailbox, then waits for more.
//
// Processing a message: bounce.Parse classifies it; correlation ties it to
// the message and recipient it answers (the VERP token first, HMAC-checked,
// then X-Mailgate-ID or the returned Message-ID, then In-Reply-To and
// References for replies); the effects (status bounced or complained,
// events, suppressions, soft-bounce counts) and the inbound row are written
// in one store transaction. Only a report a valid VERP token ties to the
// recipient is authenticated and changes state; one matched by headers
// alone, which anyone who saw the message can quote, is recorded with its
// event marked "authenticated": false and changes nothing. The inbound row, keyed by (mailbox, mailbox
// message id), is also the "already processed" record, so a crash between
// the commit and marking the message done never makes a second event.
//
// It does not read mailboxes itself (package mailbox does), parse mail
// (package bounce) or deliver webhooks (the event rows are the outbox).
package inbound
