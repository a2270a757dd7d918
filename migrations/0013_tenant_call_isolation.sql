-- Tenants cannot hurt each other through the carrier (issue 16).
--
-- A provider's call id is unique within an account, not across accounts: one account posting
-- another's call id first must not make the real call a duplicate. The provider and its id
-- lead the index, so lookups that name no account still use it.
DROP INDEX calls_provider_id;
CREATE UNIQUE INDEX calls_provider_call_account ON calls (provider, provider_call_id, account_id);

-- A Twilio account SID may be connected by more than one account: webhooks are verified with
-- every token connected for it (and the operator's), and each token reaches its own account's
-- numbers only, so a claim takes nothing from anyone. The tokens themselves are sealed by the
-- application (`src/sealing.rs`); clear values of earlier versions are sealed at start.
DROP INDEX accounts_twilio_sid;
CREATE INDEX accounts_twilio_sid ON accounts (twilio_account_sid);
