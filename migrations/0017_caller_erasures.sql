-- Erased callers (GDPR, `DELETE /v1/callers/{e164}`), so that a call event still on its way
-- when the caller was erased (waiting in an instance's spool, or a carrier's late retry) lands
-- erased. The number is kept only as `fingerprint`, a keyed hash of the account and the number
-- (the key derives from SWITCHBOARD_SECRETS_KEY, outside the database). `caller_key` is the
-- stand-in the erased calls carry, so the caller is still counted once; `erased_at` is when
-- (events of calls that began later are new calls, recorded as they come).
CREATE TABLE caller_erasures (
    fingerprint  TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    caller_key   TEXT NOT NULL,
    erased_at    BIGINT NOT NULL
);
CREATE INDEX caller_erasures_erased_at ON caller_erasures (erased_at);
