-- Accounts and sessions. Times are unix milliseconds (BIGINT), ids are text:
-- the same shapes on SQLite and PostgreSQL, so one set of queries serves both.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    -- lower-cased username: uniqueness is case-insensitive
    username_key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    email TEXT,
    email_key TEXT,
    password_hash TEXT NOT NULL,
    -- bumped to end every session made before (password change)
    auth_version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email_key) WHERE email_key IS NOT NULL;

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    data TEXT NOT NULL,
    expiry_ms BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry_ms);
