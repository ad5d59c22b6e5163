package store

// SummarizeStatus is a message's status given its recipients' statuses
// (docs/architecture.md "Statuses"): while any recipient is queued, scheduled, sending
// or deferred, the earliest of those in that order; once all are final,
// their shared status if they agree, else StatusPartial. An empty list is
// StatusQueued.
func SummarizeStatus(recipientStatuses []string) string {
	if len(recipientStatuses) == 0 {
		return StatusQueued
	}
	// The non-final statuses, earliest first.
	for _, p := range [...]string{StatusQueued, StatusScheduled, StatusSending, StatusDeferred} {
		for _, st := range recipientStatuses {
			if st == p {
				return p
			}
		}
	}
	first := recipientStatuses[0]
	for _, st := range recipientStatuses[1:] {
		if st != first {
			return StatusPartial
		}
	}
	return first
}
