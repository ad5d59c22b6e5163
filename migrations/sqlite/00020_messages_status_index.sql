-- The console's message list filtered by status, on SQLite: without
-- statistics (the store takes none) SQLite walks messages_project_created_idx
-- newest first and tests each message's status, which for a status the
-- project seldom or never has reads every message of the project (about a
-- second per million). Led by the project and the status, this index gives
-- every status filter its page directly, newest first, the cursor's
-- (created_at, id) as a range. It costs each message written about 640
-- bytes more (+12 %), CPU within the noise (docs/performance.md,
-- "Console"). PostgreSQL's 00020 adds the same index, for the overview's
-- queue count.

-- +goose Up
CREATE INDEX messages_project_status_created_idx ON messages (project_id, status, created_at DESC, id DESC);

-- +goose Down
DROP INDEX messages_project_status_created_idx;
