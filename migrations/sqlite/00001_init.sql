-- Initial schema: projects, API keys, messages with recipients and tags, the
-- event log (also the webhook outbox), suppressions and idempotency keys.
-- Times are Unix microseconds (INTEGER affinity), JSON is TEXT.

-- +goose Up
CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

INSERT INTO projects (id, name, created_at)
VALUES ('00000000-0000-7000-8000-000000000001', 'default',
        CAST(unixepoch('subsec') * 1000000 AS INTEGER));

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL DEFAULT '[]',
    secret_hash BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_project_idx ON api_keys (project_id, created_at);

CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL REFERENCES projects (id),
    key_id              TEXT NOT NULL DEFAULT '',
    from_header         TEXT NOT NULL,
    from_domain         TEXT NOT NULL,
    subject             TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL,
    tags                TEXT NOT NULL DEFAULT '[]',
    metadata            TEXT NOT NULL DEFAULT '{}',
    send_at             BIGINT,
    possibly_duplicated INTEGER NOT NULL DEFAULT 0,
    payload             BLOB NOT NULL,
    event_seq           BIGINT NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX messages_project_created_idx ON messages (project_id, created_at DESC, id DESC);
CREATE INDEX messages_status_created_idx ON messages (status, created_at);

CREATE TABLE recipients (
    message_id    TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    email         TEXT NOT NULL,
    email_lc      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    smtp_code     INTEGER,
    smtp_response TEXT NOT NULL DEFAULT '',
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (message_id, position)
);
CREATE INDEX recipients_email_lc_idx ON recipients (email_lc);

CREATE TABLE message_tags (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    PRIMARY KEY (message_id, tag)
);
CREATE INDEX message_tags_tag_idx ON message_tags (tag, message_id);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient  TEXT NOT NULL DEFAULT '',
    type       TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    data       TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX events_project_id_idx ON events (project_id, id);
CREATE UNIQUE INDEX events_message_sequence_idx ON events (message_id, sequence);

CREATE TABLE suppressions (
    project_id TEXT NOT NULL REFERENCES projects (id),
    email      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, email)
);
CREATE INDEX suppressions_project_created_idx ON suppressions (project_id, created_at DESC, email DESC);

CREATE TABLE idempotency_keys (
    key_id        TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    state         TEXT NOT NULL,
    response_code INTEGER,
    response_body BLOB,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE suppressions;
DROP TABLE events;
DROP TABLE message_tags;
DROP TABLE recipients;
DROP TABLE messages;
DROP TABLE api_keys;
DROP TABLE projects;
