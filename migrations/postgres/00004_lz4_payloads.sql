-- The large values (a message's stored payload, an inbound message's head)
-- are compressed with LZ4 instead of PostgreSQL's default pglz: pglz was
-- the largest single cost of PostgreSQL in the end-to-end benchmark (about
-- a quarter of its CPU, compressing each 10 KB payload on INSERT), LZ4
-- does the same work several times faster. LZ4 needs PostgreSQL 14 built
-- with it (Debian's and the official images are); on a server without it
-- the columns keep pglz and nothing else changes. Existing values keep
-- their compression until rewritten.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE messages ALTER COLUMN payload SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE inbound ALTER COLUMN raw_head SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression not available, payloads stay pglz: %', SQLERRM;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE messages ALTER COLUMN payload SET COMPRESSION default';
    EXECUTE 'ALTER TABLE inbound ALTER COLUMN raw_head SET COMPRESSION default';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    NULL;
END
$$;
-- +goose StatementEnd
