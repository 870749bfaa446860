-- Keyplane foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql:
-- same tables, columns and indexes; only the auto-increment spelling differs.
-- Times are integer Unix seconds. `seq` gives every row a stable, increasing position for
-- keyset pagination; `id` is the public identifier.

CREATE TABLE organization (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    singleton INTEGER NOT NULL DEFAULT 1 CONSTRAINT organization_singleton UNIQUE CHECK (singleton = 1)
);

CREATE TABLE users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL CONSTRAINT users_id_key UNIQUE,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT,
    added_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE UNIQUE INDEX users_email_live ON users (lower(email)) WHERE deleted_at IS NULL;

CREATE TABLE projects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL CONSTRAINT projects_id_key UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    archived_at BIGINT,
    external_key_id TEXT,
    residency TEXT
);

CREATE TABLE project_users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    CONSTRAINT project_users_member UNIQUE (project_id, user_id)
);

CREATE TABLE service_accounts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL CONSTRAINT service_accounts_id_key UNIQUE,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX service_accounts_by_project ON service_accounts (project_id, seq);

CREATE TABLE api_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL CONSTRAINT api_keys_id_key UNIQUE,
    kind TEXT NOT NULL,
    project_id TEXT REFERENCES projects (id),
    name TEXT NOT NULL,
    redacted_value TEXT NOT NULL,
    hash TEXT NOT NULL,
    scopes TEXT,
    owner_user_id TEXT REFERENCES users (id),
    owner_service_account_id TEXT REFERENCES service_accounts (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    deleted_at BIGINT,
    CONSTRAINT api_keys_one_owner CHECK ((owner_user_id IS NULL) <> (owner_service_account_id IS NULL))
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, seq);
CREATE INDEX api_keys_by_kind ON api_keys (kind, seq);
CREATE INDEX api_keys_by_service_account ON api_keys (owner_service_account_id);

CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL CONSTRAINT audit_events_id_key UNIQUE,
    event_type TEXT NOT NULL,
    effective_at BIGINT NOT NULL,
    project_id TEXT,
    actor TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (effective_at, seq);
