-- API keys are managed by their accounts (`/v1/account/keys`): a name to tell them apart, and
-- when each was last used (updated at most once a minute), to find the ones nobody uses.
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
