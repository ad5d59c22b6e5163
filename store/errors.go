package store

import (
	"errors"
	"fmt"
)

// ErrUnavailable: the database could not be reached or dropped the
// connection; the operation may be retried later. Nothing is known to
// have been written, except where ErrCommitUnknown says otherwise.
var ErrUnavailable = errors.New("database unavailable")

// ErrCommitUnknown: the connection was lost while a COMMIT was under way,
// so the transaction may or may not have been committed. It always comes
// with ErrUnavailable.
var ErrCommitUnknown = errors.New("commit outcome unknown")

// commitError wraps the error of a COMMIT (or of a pipeline ending in
// one), marking a lost connection as ErrCommitUnknown.
func commitError(err error) error {
	return fmt.Errorf("commit: %w", err)
}
