package inbound

import (
	"context"

	"github.com/mailgate/mailgate/mailbox"
)

// Message is one message read from a mailbox: ID is stable within the
// mailbox (IMAP UIDVALIDITY and UID, POP3 UIDL), Raw the message as read.
type Message = mailbox.Message

// Source is one mailbox; mailbox.Open returns one. It is declared here,
// with the methods the poller uses, so tests can read from an in-memory
// mailbox.
type Source interface {
	// Name names the mailbox in locks, rows, logs and metric labels; it
	// carries no secret.
	Name() string
	// Fetch returns up to max messages not yet done, skipping (without
	// downloading) those for which skip returns true.
	Fetch(ctx context.Context, max int, skip func(id string) bool) ([]Message, error)
	// Done marks messages as processed (flag and move, or delete).
	Done(ctx context.Context, ids []string) error
	// Wait returns when new mail may have arrived (IDLE or a poll
	// interval), or with ctx's error.
	Wait(ctx context.Context) error
	// Close ends the connection.
	Close() error
}

// The mailbox package's sources are the poller's.
var _ Source = mailbox.Source(nil)
