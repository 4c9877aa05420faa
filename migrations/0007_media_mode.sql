-- How a meeting's media travels: 'automatic' (direct for small calls,
-- through the media server for larger ones), 'direct' or 'server'.
ALTER TABLE meetings ADD COLUMN media_mode TEXT NOT NULL DEFAULT 'automatic'
    CHECK (media_mode IN ('automatic', 'direct', 'server'));
