-- A sender domain's verification: status is pending until its DKIM record
-- is found, then verified; a periodic re-check that finds the record gone
-- makes it failed (and verified again once it is back). verified_at is
-- when it last became verified, checked_at when DNS was last asked (by
-- verify or a re-check; a re-checker claims a domain by setting it). One
-- name is verified in at most one project: the partial unique index makes
-- two concurrent verifications of one name in two projects end with one
-- winner.
--
-- The event log also holds events about a domain, which have no message:
-- message_id becomes nullable (the domain is in the event's data). Down
-- deletes those events, since the old schema cannot hold them.

-- +goose Up
ALTER TABLE domains ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'verified', 'failed'));
ALTER TABLE domains ADD COLUMN verified_at BIGINT;
ALTER TABLE domains ADD COLUMN checked_at BIGINT;
CREATE UNIQUE INDEX domains_verified_name_idx ON domains (name) WHERE status = 'verified';
CREATE INDEX domains_recheck_idx ON domains (checked_at) WHERE status IN ('verified', 'failed');

ALTER TABLE events ALTER COLUMN message_id DROP NOT NULL;

-- +goose Down
DELETE FROM events WHERE message_id IS NULL;
ALTER TABLE events ALTER COLUMN message_id SET NOT NULL;

DROP INDEX domains_recheck_idx;
DROP INDEX domains_verified_name_idx;
ALTER TABLE domains DROP COLUMN checked_at;
ALTER TABLE domains DROP COLUMN verified_at;
ALTER TABLE domains DROP COLUMN status;
