-- SQLite writes a whole row again, its overflow pages included, whenever
-- one of its columns changes, and a message row changes twice per delivery
-- (sending, then its outcome). With the stored payload (about the size of
-- the message) in the row, each of those updates wrote the payload to the
-- WAL once more. The payload, written once and read once, moves to a table
-- of its own. PostgreSQL keeps it in messages (its 00005 is empty): it
-- stores large values out of line and an update leaves them in place.
-- On a large database the copy and the column drop rewrite the payloads
-- inside one transaction: the WAL grows to about twice their size while
-- it runs, and the file keeps its size until VACUUM.

-- +goose Up
CREATE TABLE message_payloads (
    message_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    payload    BLOB NOT NULL
);
INSERT INTO message_payloads (message_id, payload) SELECT id, payload FROM messages;
ALTER TABLE messages DROP COLUMN payload;

-- +goose Down
ALTER TABLE messages ADD COLUMN payload BLOB NOT NULL DEFAULT x'';
UPDATE messages SET payload = coalesce((SELECT p.payload FROM message_payloads p WHERE p.message_id = messages.id), x'');
DROP TABLE message_payloads;
