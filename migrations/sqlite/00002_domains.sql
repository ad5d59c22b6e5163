-- Sender domains and their DKIM keys. A domain's name is lower case, in
-- A-label form, unique per project. Private keys are sealed with the master
-- key (package keyring); retired keys are kept, no longer used to sign.
-- Times are Unix microseconds.

-- +goose Up
CREATE TABLE domains (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE dkim_keys (
    id                 TEXT PRIMARY KEY,
    domain_id          TEXT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    selector           TEXT NOT NULL,
    algorithm          TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    private_key_sealed BLOB NOT NULL,
    public_record      TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT,
    UNIQUE (domain_id, selector)
);

-- +goose Down
DROP TABLE dkim_keys;
DROP TABLE domains;
