-- Email addresses are claims until proven. A typed address grants nothing
-- (no invitations, no uniqueness) until its owner opens a link mailed to it.
--
-- Addresses stored before this migration were never proven: they start
-- unverified.
ALTER TABLE users ADD COLUMN email_verified_at_ms BIGINT;

-- Unique only among verified addresses: an unproven claim must not lock the
-- real owner out. When one account verifies an address, other accounts'
-- unverified claims on it are dropped (see app::auth::ssr).
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_verified_email_key ON users (email_key)
    WHERE email_verified_at_ms IS NOT NULL;
CREATE INDEX users_email_key_any ON users (email_key);

-- One pending link per account; only the SHA-256 of the token is kept.
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the address the link proves (a later change of address voids it)
    email_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX email_verifications_user ON email_verifications (user_id);

-- An invitee row is either an account (by username: user_id) or an address
-- (email_key), never both: an address counts only for the account that has
-- verified it, looked up when access is decided, not when the row is
-- written. Rows written before were resolved against unproven addresses.
UPDATE meeting_invitees SET user_id = NULL WHERE label LIKE '%@%';
UPDATE meeting_invitees SET email_key = NULL WHERE label NOT LIKE '%@%';
