-- When a host ended the meeting for everyone (unix ms); NULL while it can
-- be joined. A host entering again reopens it.
ALTER TABLE meetings ADD COLUMN ended_at BIGINT;
