-- People schema (SQLite). Keep in step with ../postgres/0003_people.sql: same statements.
-- Invites (and the first owner's one-time setup link), and the audit log's filter columns.

-- An invitation. Only the SHA-256 of its single-use token is stored. `purpose` is `join`
-- (a new member) or `set_password` (the setup link of `user_id`, never listed as an invite).
-- `projects` is a JSON array of {id, role}.
CREATE TABLE invites (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL CONSTRAINT invites_id_key UNIQUE,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    projects TEXT NOT NULL,
    token_hash TEXT NOT NULL CONSTRAINT invites_token_hash_key UNIQUE,
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT,
    deleted_at BIGINT
);

CREATE INDEX project_users_by_user ON project_users (user_id);
CREATE INDEX api_keys_by_owner_user ON api_keys (owner_user_id);

-- Audit filters run on their own indexed columns: who acted (user or service account id,
-- the API key id, the lowercased email) and the object the event is about.
ALTER TABLE audit_events ADD COLUMN actor_id TEXT;
ALTER TABLE audit_events ADD COLUMN actor_key_id TEXT;
ALTER TABLE audit_events ADD COLUMN actor_email TEXT;
ALTER TABLE audit_events ADD COLUMN resource_id TEXT;
CREATE INDEX audit_events_by_project ON audit_events (project_id, effective_at, seq);
CREATE INDEX audit_events_by_type ON audit_events (event_type, effective_at, seq);
CREATE INDEX audit_events_by_actor ON audit_events (actor_id, effective_at, seq);
CREATE INDEX audit_events_by_actor_key ON audit_events (actor_key_id, effective_at, seq);
CREATE INDEX audit_events_by_actor_email ON audit_events (actor_email, effective_at, seq);
CREATE INDEX audit_events_by_resource ON audit_events (resource_id, effective_at, seq);
