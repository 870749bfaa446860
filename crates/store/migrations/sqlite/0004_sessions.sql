-- Dashboard sessions. Keep in step with the other backend's 0004_sessions.sql: same statements.
-- Only the SHA-256 of the cookie's token is stored; the CSRF token is sent back with forms.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX sessions_by_user ON sessions (user_id);
