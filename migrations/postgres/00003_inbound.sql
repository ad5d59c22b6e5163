-- Inbound mail read by the poller (package inbound): one row per mailbox
-- message, written in the same transaction as the statuses, events and
-- suppressions it causes, so that (mailbox, mailbox_message_id) doubles as
-- the "already processed" record. Unmatched rows have no project.
-- summary is the bounce report as JSON (without the raw message); raw_head
-- keeps only the first bytes of the message (the poller's cap, 64 KiB by
-- default), raw_size the whole size.
-- soft_bounce_counts holds each address's consecutive soft bounces.
-- Times are Unix microseconds.

-- +goose Up
CREATE TABLE inbound (
    id                 TEXT PRIMARY KEY,
    project_id         TEXT REFERENCES projects (id),
    mailbox            TEXT NOT NULL,
    mailbox_message_id TEXT NOT NULL,
    received_at        BIGINT NOT NULL,
    kind               TEXT NOT NULL,
    matched            BOOLEAN NOT NULL,
    message_id         TEXT,
    recipient          TEXT,
    summary            TEXT NOT NULL DEFAULT '{}',
    raw_size           BIGINT NOT NULL,
    raw_head           BYTEA,
    UNIQUE (mailbox, mailbox_message_id)
);
CREATE INDEX inbound_project_received_idx ON inbound (project_id, received_at DESC, id DESC);
CREATE INDEX inbound_received_idx ON inbound (received_at DESC, id DESC);

CREATE TABLE soft_bounce_counts (
    project_id      TEXT NOT NULL REFERENCES projects (id),
    email           TEXT NOT NULL,
    count           INTEGER NOT NULL,
    last_message_id TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (project_id, email)
);

-- +goose Down
DROP TABLE soft_bounce_counts;
DROP TABLE inbound;
