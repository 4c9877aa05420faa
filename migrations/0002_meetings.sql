-- Meetings, their invitees and co-hosts. Times are unix milliseconds.
CREATE TABLE meetings (
    id TEXT PRIMARY KEY NOT NULL,
    -- the secret in the link: 130 random bits
    code TEXT NOT NULL,
    host_id TEXT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    duration_minutes BIGINT NOT NULL,
    -- flags are 0 or 1: sqlx::Any reads no SQLite booleans
    waiting_room BIGINT NOT NULL CHECK (waiting_room IN (0, 1)),
    allow_guests BIGINT NOT NULL CHECK (allow_guests IN (0, 1)),
    max_participants BIGINT NOT NULL,
    -- bumped on every change, for calendar clients (ICS SEQUENCE)
    revision BIGINT NOT NULL DEFAULT 0,
    cancelled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX meetings_code ON meetings (code);
CREATE INDEX meetings_host ON meetings (host_id, starts_at);

CREATE TABLE meeting_invitees (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    -- an account, or an outside email address (or both when they match)
    user_id TEXT REFERENCES users (id),
    email_key TEXT,
    label TEXT NOT NULL,
    PRIMARY KEY (meeting_id, label)
);
CREATE INDEX meeting_invitees_user ON meeting_invitees (user_id);
CREATE INDEX meeting_invitees_email ON meeting_invitees (email_key);

CREATE TABLE meeting_cohosts (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (meeting_id, user_id)
);
CREATE INDEX meeting_cohosts_user ON meeting_cohosts (user_id);
