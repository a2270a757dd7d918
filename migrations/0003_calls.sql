-- Calls, as the telephony provider reported them. Written from the local spool (never on the
-- webhook's path), one row per provider call id however often the provider repeats itself.
-- Attribution columns arrive with the attribution work (issue 5).

CREATE TABLE calls (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    property_id       TEXT NOT NULL,
    pool_id           TEXT,
    provider          TEXT NOT NULL,
    provider_call_id  TEXT NOT NULL,
    tracking_number   TEXT NOT NULL,
    caller_number     TEXT,
    caller_name       TEXT,
    caller_city       TEXT,
    caller_state      TEXT,
    caller_zip        TEXT,
    caller_country    TEXT,
    status            TEXT NOT NULL,
    -- When the voice webhook arrived: the time attribution looks at.
    started_at        BIGINT NOT NULL,
    -- The spool record that created the row (replays of it change nothing).
    spool_seq         BIGINT NOT NULL
);
CREATE UNIQUE INDEX calls_provider_id ON calls (provider, provider_call_id);
CREATE INDEX calls_property_started ON calls (property_id, started_at);
