-- Personal API tokens (`/api/v1`): only a SHA-256 of each token is kept
-- (tokens are 256 random bits, so a fast hash is enough), shown once at
-- creation. `scope` is 'read' or 'manage'.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'manage')),
    created_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
