-- Delivery ids in time order: the first 16 hex digits are the delivery's
-- created_at (Unix microseconds), the last 16 are random. A random id put
-- each new delivery on a random page of the primary-key index, so every
-- transaction writing events dirtied (and wrote to the WAL) a page of that
-- index per event; in time order they share the last pages. Ids already
-- written keep their form: both are 32 hex digits.

-- +goose Up
DROP TRIGGER events_webhook_fanout;
-- +goose StatementBegin
CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, next_attempt_at, created_at, updated_at)
    SELECT printf('%016x', NEW.created_at) || lower(hex(randomblob(8))), w.id, NEW.id, 'pending',
           NEW.created_at, NEW.created_at, NEW.created_at
    FROM webhook_endpoints w
    WHERE w.project_id = NEW.project_id AND w.enabled
      AND (w.events = '[]' OR EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = NEW.type))
      AND (w.tags = '[]' OR EXISTS (SELECT 1 FROM message_tags t, json_each(w.tags) j
                                    WHERE t.message_id = NEW.message_id AND j.value = t.tag));
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER events_webhook_fanout;
-- +goose StatementBegin
CREATE TRIGGER events_webhook_fanout AFTER INSERT ON events
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, next_attempt_at, created_at, updated_at)
    SELECT lower(hex(randomblob(16))), w.id, NEW.id, 'pending', NEW.created_at, NEW.created_at, NEW.created_at
    FROM webhook_endpoints w
    WHERE w.project_id = NEW.project_id AND w.enabled
      AND (w.events = '[]' OR EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = NEW.type))
      AND (w.tags = '[]' OR EXISTS (SELECT 1 FROM message_tags t, json_each(w.tags) j
                                    WHERE t.message_id = NEW.message_id AND j.value = t.tag));
END;
-- +goose StatementEnd
