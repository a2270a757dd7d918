-- GA4: the visitor's Google Analytics client id (from the `_ga` cookie, sent by the snippet),
-- kept on the session and copied to the call at attribution like the click ids; a property's
-- Measurement Protocol settings; and the queue of events sent to GA4 as calls complete.

ALTER TABLE sessions ADD COLUMN ga_client_id TEXT;
ALTER TABLE calls ADD COLUMN ga_client_id TEXT;

-- Set together or not at all. The API secret is stored in clear (it must be sent) and never
-- shown again by the API.
ALTER TABLE properties ADD COLUMN ga4_measurement_id TEXT;
ALTER TABLE properties ADD COLUMN ga4_api_secret TEXT;
ALTER TABLE properties ADD COLUMN ga4_endpoint TEXT;
ALTER TABLE properties ADD COLUMN ga4_event_name TEXT;

-- One event per call (`call_id` is unique, so queueing it again inserts nothing), retried like
-- a webhook delivery and claimed by one instance at a time (`locked_until`). The payload is the
-- Measurement Protocol body; where it goes (and the secret) is read from the property when it
-- is sent.
CREATE TABLE ga4_events (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    property_id      TEXT NOT NULL,
    call_id          TEXT NOT NULL UNIQUE,
    payload          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    last_status      BIGINT,
    last_error       TEXT
);
CREATE INDEX ga4_events_due ON ga4_events (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
