-- Outbound webhooks: the URLs an account wants its events POSTed to, and one delivery row per
-- (endpoint, event), retried with backoff until it is delivered or given up.

-- The secret is stored in clear, unlike API keys: it is the HMAC key that signs every delivery,
-- so the service must be able to read it back. The API shows it once, at creation.
CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    url          TEXT NOT NULL,
    secret       TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL,
    -- Set when the account deletes the endpoint: it receives nothing more, its history stays.
    disabled_at  BIGINT
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, created_at);

-- `id` is the event id the receiver sees; `idempotency_key` is the caller's key for the event
-- (the same for every endpoint and every retry). Enqueuing a key again inserts nothing, so a
-- replayed event is sent once. `locked_until` is a claim by one instance's worker while it
-- sends; a claim that outlives a crashed worker simply expires.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id),
    account_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    payload          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    -- The HTTP status of the last attempt, if the receiver answered at all.
    last_status      BIGINT,
    last_error       TEXT,
    UNIQUE (endpoint_id, idempotency_key)
);
-- The worker's question: what is due now? Only rows still in flight are indexed.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
