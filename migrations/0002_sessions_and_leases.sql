-- Visitor sessions, their page views, and the assignment ledger (every lease of a tracking
-- number to a session). Written behind the request path, at most a second after the fact.

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    property_id      TEXT NOT NULL,
    pool_id          TEXT,
    -- How the session got its number: lease, shared, overflow, default, source, none, bot, limited.
    assignment       TEXT NOT NULL,
    number           TEXT,
    landing_url      TEXT NOT NULL,
    referrer         TEXT,
    channel          TEXT NOT NULL,
    source           TEXT NOT NULL,
    medium           TEXT NOT NULL,
    campaign         TEXT,
    term             TEXT,
    content          TEXT,
    gclid            TEXT,
    gbraid           TEXT,
    wbraid           TEXT,
    msclkid          TEXT,
    fbclid           TEXT,
    ttclid           TEXT,
    li_fat_id        TEXT,
    visitor_city     TEXT,
    visitor_region   TEXT,
    visitor_country  TEXT,
    page_views       BIGINT NOT NULL,
    first_seen_at    BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL
);
CREATE INDEX sessions_property_first_seen ON sessions (property_id, first_seen_at);
CREATE INDEX sessions_pool_first_seen ON sessions (pool_id, first_seen_at);

-- No key of its own: rows are only ever read by session, and one index per page view is cheaper
-- than two on the hottest write path.
CREATE TABLE page_views (
    session_id  TEXT NOT NULL,
    url         TEXT NOT NULL,
    viewed_at   BIGINT NOT NULL
);
CREATE INDEX page_views_session ON page_views (session_id, viewed_at);

-- One row per (session, number, start): the lease covers [started_at, ends_at), where ends_at
-- moves forward with every renewal (last activity + the pool's lease length).
CREATE TABLE leases (
    id             TEXT PRIMARY KEY,
    pool_id        TEXT NOT NULL,
    number         TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    ends_at        BIGINT NOT NULL,
    shared         BIGINT NOT NULL
);
CREATE INDEX leases_number_started ON leases (number, started_at);
CREATE INDEX leases_pool_ends ON leases (pool_id, ends_at);

-- A session that found no free number in its pool.
CREATE TABLE exhaustion_events (
    id          TEXT PRIMARY KEY,
    pool_id     TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    policy      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX exhaustion_events_pool ON exhaustion_events (pool_id, at);
