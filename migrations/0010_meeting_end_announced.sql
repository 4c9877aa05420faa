-- A meeting nobody ends is announced ended (webhook `meeting.ended`, reason
-- `scheduled_end`) once its scheduled time is over and its call is empty.
-- call_started_at: when its call last started (the first person in an
-- empty call); end_announced_at: when its end was announced (by that rule
-- or by a host's end), cleared when the call starts again. Unix ms.
ALTER TABLE meetings ADD COLUMN call_started_at BIGINT;
ALTER TABLE meetings ADD COLUMN end_announced_at BIGINT;
-- Only the started meetings whose end is still to announce: the look-up
-- every few seconds stays small however many meetings there were.
CREATE INDEX meetings_end_unannounced ON meetings (starts_at)
    WHERE call_started_at IS NOT NULL AND end_announced_at IS NULL;
