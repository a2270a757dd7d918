-- A call to a number the routing table does not know yet looks its route up by overflow number
-- too (`Storage::route_of`); pools had no index on it.
CREATE INDEX pools_overflow_number ON pools (overflow_number) WHERE overflow_number IS NOT NULL;

-- Calls to source and overflow numbers are matched to the last session shown the number
-- (`Storage::last_session_shown`); without this the property's whole session history is read.
CREATE INDEX sessions_property_number_last_seen ON sessions (property_id, number, last_seen_at);

-- Attribution claims calls a batch at a time (`Storage::claim_calls_for_attribution`): until
-- this wall-clock time (ms) no other instance takes them. NULL: unclaimed.
ALTER TABLE calls ADD COLUMN claimed_until BIGINT;
