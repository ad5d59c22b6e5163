-- The console's overview reads event counts from here, not from the event
-- log: per project, sender domain (the message's from_domain), bucket
-- (width in seconds: 60 or 3600; bucket_start in Unix microseconds) and
-- kind (accepted, sent, deferred, failed, bounced_hard, bounced_soft,
-- complained, replied, suppressed, cancelled), how many events of that
-- kind the bucket holds. A rollup pass of the worker (store.RollUpEvents)
-- adds the events after event_rollup.last_event_id to it and moves that
-- position, off the send path: no writer of the event log touches these
-- rows. as_of is the time the counts are complete to. Minute buckets are
-- kept for a few hours, hour buckets as long as events are.

-- +goose Up
CREATE TABLE event_counts (
    project_id   TEXT NOT NULL,
    from_domain  TEXT NOT NULL,
    width        INTEGER NOT NULL,
    bucket_start BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (project_id, width, bucket_start, from_domain, kind)
);
CREATE INDEX event_counts_bucket_idx ON event_counts (width, bucket_start);

CREATE TABLE event_rollup (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id BIGINT NOT NULL,
    as_of         BIGINT NOT NULL
);
INSERT INTO event_rollup (id, last_event_id, as_of) VALUES (1, 0, 0);

-- +goose Down
DROP TABLE event_rollup;
DROP TABLE event_counts;
