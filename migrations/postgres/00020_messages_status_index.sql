-- The console's status filter and the overview's queue count: messages by
-- project, status and time, as SQLite's 00020. Through
-- messages_status_created_idx (status, created_at), which has no project,
-- the queue count fetched every waiting message from the heap to test its
-- project (1.6 s with 99,000 queued on a million messages); led by the
-- project and the status, this index counts them with an index-only scan
-- and gives every status filter its page newest first, the cursor's
-- (created_at, id) as a range (docs/performance.md, "Console"). No write
-- cost was visible on PostgreSQL (store's CreateMessagesListIndexes
-- benchmark).

-- +goose Up
CREATE INDEX messages_project_status_created_idx ON messages (project_id, status, created_at DESC, id DESC);

-- +goose Down
DROP INDEX messages_project_status_created_idx;
