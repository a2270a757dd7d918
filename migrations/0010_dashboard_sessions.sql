-- Dashboard sign-ins: a browser session opened with an API key. The cookie holds a random
-- token; only its SHA-256 is stored (like API keys), so a copy of this table opens nothing.
-- A session ends at `expires_at`, when it is signed out (its row deleted), or when the key
-- that opened it is revoked.
CREATE TABLE dashboard_sessions (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    api_key_id  TEXT NOT NULL REFERENCES api_keys (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
