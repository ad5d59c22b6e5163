-- Webhook endpoints and their deliveries. An endpoint's events and tags
-- filters are JSON arrays of strings ('[]' matches every event, every
-- message); its signing secret is sealed with the master key (package
-- keyring), and during a rotation the previous one signs too until it
-- expires. A delivery is one event (or a test payload) for one endpoint;
-- its id is the webhook-id header, the same on every attempt. A delivery is
-- due while next_attempt_at is set and past; a dispatcher claims it by
-- moving next_attempt_at to the end of a lease, so a killed worker's
-- deliveries come due again. Times are Unix microseconds.
--
-- The trigger writes a delivery row for every enabled endpoint an event
-- matches, in the transaction that writes the event: every writer of the
-- event log is covered in one place, and an event committed has its
-- deliveries committed with it. Replay (store.ReplayWebhookEvents) matches
-- events to an endpoint with the same condition.

-- +goose Up
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    project_id                 TEXT NOT NULL REFERENCES projects (id),
    url                        TEXT NOT NULL,
    events                     TEXT NOT NULL DEFAULT '[]',
    tags                       TEXT NOT NULL DEFAULT '[]',
    description                TEXT NOT NULL DEFAULT '',
    enabled                    BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason            TEXT NOT NULL DEFAULT '',
    secret_sealed              BLOB NOT NULL,
    previous_secret_sealed     BLOB,
    previous_secret_expires_at BIGINT,
    failing_since              BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_project_idx ON webhook_endpoints (project_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        BIGINT REFERENCES events (id) ON DELETE CASCADE,
    payload         TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    response_code   INTEGER,
    response_body   TEXT NOT NULL DEFAULT '',
    latency_ms      INTEGER,
    error           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

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

-- +goose Down
DROP TRIGGER events_webhook_fanout;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
