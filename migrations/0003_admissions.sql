-- Who may be in a meeting: decided and remembered on the server, per meeting
-- and per participant (a user, or a guest identity held by one session).
CREATE TABLE meeting_admissions (
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    is_guest BIGINT NOT NULL CHECK (is_guest IN (0, 1)),
    state TEXT NOT NULL CHECK (state IN ('waiting', 'admitted', 'denied', 'removed')),
    knocked_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    PRIMARY KEY (meeting_id, participant_id)
);
CREATE INDEX meeting_admissions_waiting ON meeting_admissions (meeting_id, state);
