-- Background work shared between instances (`src/work.rs`). A row is a lease on one shard of a
-- job (`alerts:3`), or an instance's heartbeat (`instance:<id>`); `expires_at` is wall-clock
-- ms. A holder renews its rows well before they expire; rows of an instance that died expire,
-- and the others take its shards.
CREATE TABLE work_leases (
    job TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Counters bumped when the routing table's or the carrier credentials' rows change, so each
-- instance's periodic safety-net reload reads one row, not every route, when nothing changed.
CREATE TABLE config_revisions (
    name TEXT PRIMARY KEY,
    revision BIGINT NOT NULL
);
