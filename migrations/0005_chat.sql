-- In-room chat. `seq` orders a meeting's messages without gaps: it comes
-- from chat_counters, incremented in the same transaction as the insert.
-- (meeting_id, sender_id, idem_key) makes a resend of the same message
-- store nothing new.
CREATE TABLE chat_counters (
    meeting_id TEXT PRIMARY KEY REFERENCES meetings (id) ON DELETE CASCADE,
    last_seq BIGINT NOT NULL
);
CREATE TABLE chat_messages (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    -- Private messages: the one recipient (participant id and name).
    to_id TEXT,
    to_name TEXT,
    PRIMARY KEY (meeting_id, seq),
    UNIQUE (meeting_id, sender_id, idem_key)
);
