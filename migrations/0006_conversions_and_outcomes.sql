-- What calls led to: conversions (a sale, a booking, with a value) and the business's own view
-- of each call (a disposition, scores, tags), set by a CRM or an agent.

CREATE TABLE conversions (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    property_id   TEXT NOT NULL,
    call_id       TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- Micro-units of the property's currency (conversions in another currency are refused).
    value_micros  BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX conversions_call ON conversions (call_id, at);
CREATE INDEX conversions_property_at ON conversions (property_id, at);

ALTER TABLE calls ADD COLUMN disposition TEXT;
ALTER TABLE calls ADD COLUMN lead_score BIGINT;
ALTER TABLE calls ADD COLUMN csat BIGINT;
-- A JSON array of short labels.
ALTER TABLE calls ADD COLUMN tags TEXT;

-- The dispositions a property's calls may be given (a JSON array), and its lead rule: a call
-- of at least this many seconds is a qualified lead (Google Ads counts 60 s by default).
ALTER TABLE properties ADD COLUMN dispositions TEXT NOT NULL
    DEFAULT '["appointment","sale","resolved","escalated","follow_up","spam"]';
ALTER TABLE properties ADD COLUMN qualified_after_s BIGINT NOT NULL DEFAULT 60;
-- 1: only a first-time caller's call can be a qualified lead.
ALTER TABLE properties ADD COLUMN qualified_first_time_only BIGINT NOT NULL DEFAULT 0;

-- Set when the call completes, by the property's lead rule at that moment.
ALTER TABLE calls ADD COLUMN qualified BIGINT;
