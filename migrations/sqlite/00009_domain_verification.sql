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
-- message_id becomes nullable (the domain is in the event's data). SQLite
-- cannot drop a NOT NULL constraint, so the table is rebuilt with its
-- rows, ids, foreign key and indexes, and its AUTOINCREMENT counter, so
-- that the id of an event deleted before never comes back. Down deletes
-- the events without a message, which the old schema cannot hold.

-- +goose Up
ALTER TABLE domains ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'verified', 'failed'));
ALTER TABLE domains ADD COLUMN verified_at BIGINT;
ALTER TABLE domains ADD COLUMN checked_at BIGINT;
CREATE UNIQUE INDEX domains_verified_name_idx ON domains (name) WHERE status = 'verified';
CREATE INDEX domains_recheck_idx ON domains (checked_at) WHERE status IN ('verified', 'failed');

CREATE TABLE events_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
    recipient  TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
INSERT INTO events_new (id, project_id, message_id, recipient, type, sequence, data, created_at)
SELECT id, project_id, message_id, recipient, type, sequence, data, created_at FROM events;
DELETE FROM sqlite_sequence WHERE name = 'events_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_new', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_project_id_idx ON events (project_id, id);
CREATE UNIQUE INDEX events_message_sequence_idx ON events (message_id, sequence);

-- +goose Down
CREATE TABLE events_old (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient  TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
INSERT INTO events_old (id, project_id, message_id, recipient, type, sequence, data, created_at)
SELECT id, project_id, message_id, recipient, type, sequence, data, created_at FROM events
WHERE message_id IS NOT NULL;
DELETE FROM sqlite_sequence WHERE name = 'events_old';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_old', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_old RENAME TO events;
CREATE INDEX events_project_id_idx ON events (project_id, id);
CREATE UNIQUE INDEX events_message_sequence_idx ON events (message_id, sequence);

DROP INDEX domains_recheck_idx;
DROP INDEX domains_verified_name_idx;
ALTER TABLE domains DROP COLUMN checked_at;
ALTER TABLE domains DROP COLUMN verified_at;
ALTER TABLE domains DROP COLUMN status;
