-- Failed attempts used to keep up to 200 bytes of the receiver's answer in last_error, which
-- the account reads (GET /v1/webhooks/{id}/deliveries): an internal service's answer must not
-- reach it. Earlier failures keep their status only, as new ones are recorded.
UPDATE webhook_deliveries SET last_error = 'HTTP ' || last_status
    WHERE last_status IS NOT NULL AND last_error IS NOT NULL;
UPDATE ga4_events SET last_error = 'HTTP ' || last_status
    WHERE last_status IS NOT NULL AND last_error IS NOT NULL;
