-- A message accepted in a batch request is sent by that batch's one send
-- task (its asynq task id is batch_id) rather than a task of its own; the
-- reconciler re-enqueues the batch's task, never a second task for one of
-- its messages. NULL for messages with a send task of their own.

-- +goose Up
ALTER TABLE messages ADD COLUMN batch_id TEXT;

-- +goose Down
ALTER TABLE messages DROP COLUMN batch_id;
