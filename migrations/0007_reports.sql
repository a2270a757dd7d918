-- Attribution reports: ad spend, cost settings, and the rollups reports read.
--
-- Rollups are rebuilt per (property, local day) from the raw rows, never patched by deltas:
-- a rebuild is idempotent, so a replayed call event, a retried callback or two instances
-- rebuilding the same day at once cannot count anything twice. Writes that change a report
-- (a call, its attribution or outcome, a conversion, a new session) mark the UTC hour they
-- fall in as dirty in the same transaction; a background pass, and each report for the days
-- it reads, rebuilds the local days those hours touch.

-- Ad spend per (day, source, medium, campaign); re-sending a day replaces it. '' = not set.
CREATE TABLE ad_costs (
    property_id    TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    day            TEXT NOT NULL,
    source         TEXT NOT NULL,
    medium         TEXT NOT NULL,
    campaign       TEXT NOT NULL,
    amount_micros  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (property_id, day, source, medium, campaign)
);

-- Telephony minutes (billed per started minute, as Twilio bills) and the property's own
-- running cost (staff, software), both in micro-units of the property's currency.
ALTER TABLE properties ADD COLUMN per_minute_cost_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE properties ADD COLUMN operating_cost_monthly_micros BIGINT NOT NULL DEFAULT 0;

-- `version` rises with every mark: a rebuild removes the mark only if nobody marked the hour
-- again while it ran.
CREATE TABLE rollup_dirty (
    property_id      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    hour             BIGINT NOT NULL,
    first_marked_at  BIGINT NOT NULL,
    version          BIGINT NOT NULL,
    PRIMARY KEY (property_id, kind, hour)
);

-- One row per (property, local day, dimension, value, channel) with the day's call counts.
-- `channel` is kept under every dimension so that costs known only by channel can be shared
-- out by calls.
--
-- Unique callers over any range of up to 366 days are exact and summable: a call is its
-- caller's first in [from, to] exactly when the caller's previous call is before `from`.
-- `new_callers` counts calls with no previous call in the year before (first in any range);
-- repeat calls are counted in `repeat_rollups` by the day of the previous call, read only
-- where that day is before the range.
CREATE TABLE call_rollups (
    property_id             TEXT NOT NULL,
    day                     TEXT NOT NULL,
    dimension               TEXT NOT NULL,
    value                   TEXT NOT NULL,
    channel                 TEXT NOT NULL,
    calls                   BIGINT NOT NULL,
    spam_calls              BIGINT NOT NULL,
    first_time_callers      BIGINT NOT NULL,
    answered                BIGINT NOT NULL,
    missed                  BIGINT NOT NULL,
    qualified               BIGINT NOT NULL,
    conversions             BIGINT NOT NULL,
    converted_calls         BIGINT NOT NULL,
    revenue_micros          BIGINT NOT NULL,
    billable_minutes        BIGINT NOT NULL,
    duration_s_sum          BIGINT NOT NULL,
    duration_n              BIGINT NOT NULL,
    answer_ms_sum           BIGINT NOT NULL,
    answer_n                BIGINT NOT NULL,
    talk_s_sum              BIGINT NOT NULL,
    talk_n                  BIGINT NOT NULL,
    blocked                 BIGINT NOT NULL,
    abandoned               BIGINT NOT NULL,
    answered_in_20s         BIGINT NOT NULL,
    appointments            BIGINT NOT NULL,
    resolved                BIGINT NOT NULL,
    escalated               BIGINT NOT NULL,
    csat_sum                BIGINT NOT NULL,
    csat_n                  BIGINT NOT NULL,
    csat_satisfied          BIGINT NOT NULL,
    new_callers             BIGINT NOT NULL,
    new_callers_no_repeat   BIGINT NOT NULL,
    PRIMARY KEY (property_id, dimension, day, value, channel)
);

-- Repeat calls (not spam) by the local day of the caller's previous call; `no_repeat_7d`
-- counts those not followed by another call within 7 days (first-call resolution).
CREATE TABLE repeat_rollups (
    property_id    TEXT NOT NULL,
    dimension      TEXT NOT NULL,
    prev_day       TEXT NOT NULL,
    day            TEXT NOT NULL,
    value          TEXT NOT NULL,
    calls          BIGINT NOT NULL,
    no_repeat_7d   BIGINT NOT NULL,
    PRIMARY KEY (property_id, dimension, prev_day, day, value)
);
CREATE INDEX repeat_rollups_day ON repeat_rollups (property_id, day);

-- Sessions per (property, local day of the first page view, dimension, value).
CREATE TABLE session_rollups (
    property_id  TEXT NOT NULL,
    day          TEXT NOT NULL,
    dimension    TEXT NOT NULL,
    value        TEXT NOT NULL,
    sessions     BIGINT NOT NULL,
    PRIMARY KEY (property_id, dimension, day, value)
);

-- A caller's calls by stand-in after erasure (unique callers survive GDPR erasure).
CREATE INDEX calls_account_caller_key ON calls (account_id, caller_key, started_at);
