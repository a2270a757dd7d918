-- Alerts: each property's rules, and the state of every (property, rule, subject), so that an
-- alert is announced once per episode however many instances evaluate the rules.

-- A property without a row uses the defaults. Thresholds are parts per million of the share
-- (0.75 = 750000): exact, and no floating-point columns.
CREATE TABLE alert_settings (
    property_id                     TEXT PRIMARY KEY REFERENCES properties (id),
    account_id                      TEXT NOT NULL,
    pool_utilisation_enabled        BIGINT NOT NULL,
    pool_utilisation_threshold_ppm  BIGINT NOT NULL,
    exhaustion_enabled              BIGINT NOT NULL,
    missed_calls_enabled            BIGINT NOT NULL,
    missed_calls_threshold_ppm      BIGINT NOT NULL,
    missed_calls_min_calls          BIGINT NOT NULL,
    no_calls_enabled                BIGINT NOT NULL,
    no_calls_after_minutes          BIGINT NOT NULL,
    -- A JSON array of days (`["mon","tue"]`), and local times `HH:MM` (`to` may be `24:00`).
    business_days                   TEXT NOT NULL,
    business_from                   TEXT NOT NULL,
    business_to                     TEXT NOT NULL,
    updated_at                      BIGINT NOT NULL
);

-- `subject` is the pool for the pool rules, the property itself for the others; no row means
-- 'ok'. An instance fires with a conditional upsert ('ok' -> 'firing') and queues the event in
-- the same transaction, so only the instance that wins announces it. `since` is when the state
-- began (it names the episode in the event's idempotency key); `clear_since` is set while a
-- firing alert's condition has been clear since then (it resolves once clear long enough).
CREATE TABLE alert_states (
    property_id  TEXT NOT NULL,
    rule         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    state        TEXT NOT NULL,
    since        BIGINT NOT NULL,
    clear_since  BIGINT,
    PRIMARY KEY (property_id, rule, subject)
);
