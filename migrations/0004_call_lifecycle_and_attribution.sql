-- A call's life after the voice webhook (status, Dial and recording callbacks, merged so that a
-- repeated or late callback never moves it backwards), its attribution to a visitor session,
-- and the settings that shape how calls are forwarded.

-- Lifecycle. `status` only moves forward (ringing < in-progress < a final status); `outcome` is
-- answered or missed once known (answered is final: evidence of an answer outweighs anything).
ALTER TABLE calls ADD COLUMN status_rank BIGINT NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN outcome TEXT;
ALTER TABLE calls ADD COLUMN answered_at BIGINT;
ALTER TABLE calls ADD COLUMN ended_at BIGINT;
ALTER TABLE calls ADD COLUMN duration_s BIGINT;
ALTER TABLE calls ADD COLUMN talk_s BIGINT;
ALTER TABLE calls ADD COLUMN dial_status TEXT;
ALTER TABLE calls ADD COLUMN recording_url TEXT;
ALTER TABLE calls ADD COLUMN recording_sid TEXT;
ALTER TABLE calls ADD COLUMN recording_duration_s BIGINT;
ALTER TABLE calls ADD COLUMN last_sequence BIGINT;
-- 'voice' when the voice webhook (or a provider's call.started) created or completed the row;
-- 'status' while only a later callback has been seen (its start time is an estimate).
ALTER TABLE calls ADD COLUMN origin TEXT NOT NULL DEFAULT 'voice';
ALTER TABLE calls ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
-- After a caller is erased (GDPR): a random stand-in that keeps unique-caller counts right.
ALTER TABLE calls ADD COLUMN caller_key TEXT;

-- Attribution: NULL confidence means not attributed yet. The session's attribution is copied
-- onto the call, so reports group calls without joining sessions.
ALTER TABLE calls ADD COLUMN confidence TEXT;
ALTER TABLE calls ADD COLUMN session_id TEXT;
ALTER TABLE calls ADD COLUMN candidates TEXT;
ALTER TABLE calls ADD COLUMN channel TEXT;
ALTER TABLE calls ADD COLUMN source TEXT;
ALTER TABLE calls ADD COLUMN medium TEXT;
ALTER TABLE calls ADD COLUMN campaign TEXT;
ALTER TABLE calls ADD COLUMN term TEXT;
ALTER TABLE calls ADD COLUMN content TEXT;
ALTER TABLE calls ADD COLUMN landing_url TEXT;
ALTER TABLE calls ADD COLUMN referrer TEXT;
ALTER TABLE calls ADD COLUMN gclid TEXT;
ALTER TABLE calls ADD COLUMN gbraid TEXT;
ALTER TABLE calls ADD COLUMN wbraid TEXT;
ALTER TABLE calls ADD COLUMN msclkid TEXT;
ALTER TABLE calls ADD COLUMN fbclid TEXT;
ALTER TABLE calls ADD COLUMN ttclid TEXT;
ALTER TABLE calls ADD COLUMN li_fat_id TEXT;
ALTER TABLE calls ADD COLUMN visitor_city TEXT;
ALTER TABLE calls ADD COLUMN visitor_region TEXT;
ALTER TABLE calls ADD COLUMN visitor_country TEXT;
-- The caller's first call in the account (NULL: this is it, a first-time caller).
ALTER TABLE calls ADD COLUMN first_call_id TEXT;
ALTER TABLE calls ADD COLUMN attributed_at BIGINT;
-- When the call.completed event was queued for the account's webhooks (once per call).
ALTER TABLE calls ADD COLUMN notified_at BIGINT;

CREATE INDEX calls_pending_attribution ON calls (confidence, started_at);
CREATE INDEX calls_account_caller ON calls (account_id, caller_number, started_at);
CREATE INDEX leases_session ON leases (session_id, started_at);

-- How calls to a property ring through.
ALTER TABLE properties ADD COLUMN ring_timeout_s BIGINT NOT NULL DEFAULT 20;
-- 'do-not-record' or 'record-from-answer-dual' (Twilio's names).
ALTER TABLE properties ADD COLUMN record TEXT NOT NULL DEFAULT 'do-not-record';
-- Whose number the business sees: 'caller' or 'tracking_number'.
ALTER TABLE properties ADD COLUMN caller_id TEXT NOT NULL DEFAULT 'caller';
-- What the business hears before the caller is connected: 'off', 'channel' or 'campaign'.
ALTER TABLE properties ADD COLUMN whisper TEXT NOT NULL DEFAULT 'off';
ALTER TABLE properties ADD COLUMN attribution_window_hours BIGINT NOT NULL DEFAULT 24;

-- Telephony credentials per account, for services that host several Twilio accounts, and the
-- secret that signs the generic call endpoint. Kept in clear: each keys an HMAC.
ALTER TABLE accounts ADD COLUMN twilio_account_sid TEXT;
ALTER TABLE accounts ADD COLUMN twilio_auth_token TEXT;
ALTER TABLE accounts ADD COLUMN calls_secret TEXT;
CREATE UNIQUE INDEX accounts_twilio_sid ON accounts (twilio_account_sid);
