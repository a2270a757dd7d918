-- Portable SQL: this file runs unchanged on SQLite and PostgreSQL (through sqlx's Any driver).
-- Conventions that keep it portable:
--   ids are TEXT (UUIDs), times are BIGINT milliseconds since the Unix epoch (UTC),
--   flags are BIGINT 0/1 (the Any driver cannot decode SQLite booleans),
--   lists are TEXT holding a JSON array,
--   money is BIGINT micro-units of the property's currency (1.15 USD = 1150000): exact sums, and
--   no floating-point columns (sqlx 0.9's Any driver binds a NULL f64 as float4 on PostgreSQL,
--   which breaks the statement for every later non-NULL f64).

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- API keys are stored as the SHA-256 of the key: a key is 256 random bits, so a fast hash is
-- enough (nothing to brute-force) and lookups stay an indexed equality.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    key_hash    TEXT NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE properties (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    name            TEXT NOT NULL,
    public_key      TEXT NOT NULL UNIQUE,
    domains         TEXT NOT NULL,
    default_number  TEXT NOT NULL,
    forward_to      TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    currency        TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX properties_account ON properties (account_id, created_at);

CREATE TABLE pools (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    property_id      TEXT NOT NULL REFERENCES properties (id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    match_channel    TEXT,
    match_source     TEXT,
    match_medium     TEXT,
    match_campaign   TEXT,
    lease_minutes    BIGINT NOT NULL,
    exhaustion       TEXT NOT NULL,
    overflow_number  TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX pools_property ON pools (property_id, created_at);

-- A tracking number belongs to exactly one pool in the whole service while it is live;
-- a retired number keeps its row (past calls point at it) and may be bought again later.
CREATE TABLE tracking_numbers (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    pool_id       TEXT NOT NULL REFERENCES pools (id),
    e164          TEXT NOT NULL,
    monthly_cost_micros  BIGINT,
    added_at      BIGINT NOT NULL,
    retired_at    BIGINT
);
CREATE UNIQUE INDEX tracking_numbers_live ON tracking_numbers (e164) WHERE retired_at IS NULL;
CREATE INDEX tracking_numbers_pool ON tracking_numbers (pool_id);
