-- SQLite only (its 00005 moves the stored payload out of the messages row,
-- which SQLite rewrote whole on every status change); PostgreSQL stores
-- large values out of line and leaves them in place on update. Kept so
-- both dialects have the same versions.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
