-- SQLite only (its 00020 indexes messages by project, status and time for
-- the console's status filter); PostgreSQL's planner serves those pages
-- from messages_status_created_idx, measured on a million messages
-- (docs/performance.md, "Console"). Kept so both dialects have the same
-- versions.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
