-- PostgreSQL only (its 00004 moves large values to LZ4 compression);
-- SQLite stores values uncompressed. Kept so both dialects have the same
-- versions.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
