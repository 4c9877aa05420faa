-- Webhooks: an account's HTTPS endpoints, told about its meetings. The
-- secret signs each delivery (HMAC-SHA256), so it is kept as is.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    removed_at_ms BIGINT
);
CREATE INDEX webhooks_user ON webhooks (user_id);

-- One row per event and endpoint: delivered at least once, by whichever
-- instance claims it first (a claim expires, so a crashed instance's work
-- is taken over).
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    claimed_until_ms BIGINT NOT NULL DEFAULT 0,
    delivered_at_ms BIGINT,
    gave_up_at_ms BIGINT,
    last_status INTEGER,
    last_error TEXT
);
-- Only the deliveries still to send: the per-second look-up stays small
-- however long the history grows (old rows are pruned after 30 days).
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms)
    WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL;
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_at_ms);
