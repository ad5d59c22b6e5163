-- Console sessions (package console): one row per signed-in browser.
-- id_hash is the hex SHA-256 of the random session id the cookie carries
-- (the id itself is never stored); key_id is the API key that signed in,
-- checked on every request, so revoking it ends the session; project_id
-- is the project shown (the key's own, or the one an admin key switched
-- to). created_at bounds the absolute lifetime, last_seen_at the idle one.
-- Times are Unix microseconds.

-- +goose Up
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES api_keys (id),
    project_id   TEXT NOT NULL REFERENCES projects (id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_at);

-- +goose Down
DROP TABLE console_sessions;
