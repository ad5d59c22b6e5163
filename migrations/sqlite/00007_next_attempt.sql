-- next_attempt_at is when a started message's next attempt is due (Unix
-- microseconds): while it is sending, the deadline of the task making the
-- attempt; once deferred, when its retry runs. The reconciler gives a
-- sending or deferred message a send task again once that time has passed
-- and its task is missing (lost with Redis's data). Messages started
-- before this migration get the two hours the reconciler used to wait.

-- +goose Up
ALTER TABLE messages ADD COLUMN next_attempt_at BIGINT;
UPDATE messages SET next_attempt_at = updated_at + 7200000000 WHERE status IN ('sending', 'deferred');
CREATE INDEX messages_status_next_attempt_idx ON messages (status, next_attempt_at);

-- +goose Down
DROP INDEX messages_status_next_attempt_idx;
ALTER TABLE messages DROP COLUMN next_attempt_at;
