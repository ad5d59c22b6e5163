-- Delivery ids in time order: the first 16 hex digits are the delivery's
-- created_at (Unix microseconds), the last 16 are random. A random id put
-- each new delivery on a random page of the primary-key index, so every
-- transaction writing events dirtied (and wrote to the WAL) a page of that
-- index per event; in time order they share the last pages. Ids already
-- written keep their form: both are 32 hex digits.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, next_attempt_at, created_at, updated_at)
    SELECT lpad(to_hex(n.created_at), 16, '0') || right(replace(gen_random_uuid()::text, '-', ''), 16),
           w.id, n.id, 'pending', n.created_at, n.created_at, n.created_at
    FROM new_events n JOIN webhook_endpoints w ON w.project_id = n.project_id AND w.enabled
    WHERE (w.events = '[]' OR w.events::jsonb ? n.type)
      AND (w.tags = '[]' OR EXISTS (SELECT 1 FROM message_tags t
                                    WHERE t.message_id = n.message_id AND w.tags::jsonb ? t.tag));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION webhook_fanout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, next_attempt_at, created_at, updated_at)
    SELECT replace(gen_random_uuid()::text, '-', ''), w.id, n.id, 'pending', n.created_at, n.created_at, n.created_at
    FROM new_events n JOIN webhook_endpoints w ON w.project_id = n.project_id AND w.enabled
    WHERE (w.events = '[]' OR w.events::jsonb ? n.type)
      AND (w.tags = '[]' OR EXISTS (SELECT 1 FROM message_tags t
                                    WHERE t.message_id = n.message_id AND w.tags::jsonb ? t.tag));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
