-- Earlier answers of webhook deliveries: one row per attempt that did not
-- deliver (an error, a refusal, a 429 or 503 deferral), written in the
-- transaction that records the attempt's outcome. The delivery's own row
-- keeps the latest answer, so a delivery answered 2xx at once writes
-- nothing here; a delivery's attempt log is these rows, oldest first, then
-- its delivered answer. Deleted with the delivery.

-- +goose Up
CREATE TABLE webhook_attempts (
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at            BIGINT NOT NULL,
    status        TEXT NOT NULL,
    response_code INTEGER,
    response_body TEXT NOT NULL DEFAULT '',
    latency_ms    INTEGER,
    error         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, at)
);

-- +goose Down
DROP TABLE webhook_attempts;
