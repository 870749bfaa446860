-- Gateway schema (PostgreSQL). Keep in step with ../sqlite/0002_gateway.sql.

-- Per-project, per-model rate limit overrides; a missing row or column means the catalog default.
CREATE TABLE project_rate_limits (
    project_id TEXT NOT NULL REFERENCES projects (id),
    model TEXT NOT NULL,
    max_requests_per_1_minute BIGINT,
    max_tokens_per_1_minute BIGINT,
    max_requests_per_1_day BIGINT,
    max_images_per_1_minute BIGINT,
    max_audio_megabytes_per_1_minute BIGINT,
    batch_1_day_max_input_tokens BIGINT,
    updated_at BIGINT NOT NULL,
    CONSTRAINT project_rate_limits_pk PRIMARY KEY (project_id, model)
);

-- Allow or deny list of models per project (`model_ids` is a JSON array).
CREATE TABLE project_model_permissions (
    project_id TEXT NOT NULL CONSTRAINT project_model_permissions_pk PRIMARY KEY REFERENCES projects (id),
    mode TEXT NOT NULL,
    model_ids TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Metered usage, one row per minute, family, project, key and model. Written by the batched
-- metering writer with additive upserts, never on the request path.
CREATE TABLE usage_minutes (
    minute BIGINT NOT NULL,
    family TEXT NOT NULL,
    project_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    user_id TEXT,
    service_account_id TEXT,
    model TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    images BIGINT NOT NULL,
    cost_nano_usd BIGINT NOT NULL,
    CONSTRAINT usage_minutes_pk PRIMARY KEY (minute, family, project_id, api_key_id, model)
);
CREATE INDEX usage_minutes_by_project ON usage_minutes (project_id, minute);

-- Hard spend limit per project (cents per interval).
CREATE TABLE spend_limits (
    project_id TEXT NOT NULL CONSTRAINT spend_limits_pk PRIMARY KEY REFERENCES projects (id),
    threshold_amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    period TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Spend alerts: per project, or for the organization when project_id is NULL.
CREATE TABLE spend_alerts (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL CONSTRAINT spend_alerts_id_key UNIQUE,
    project_id TEXT REFERENCES projects (id),
    threshold_amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    period TEXT NOT NULL,
    recipients TEXT NOT NULL,
    subject_prefix TEXT,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);

-- One row per alert and period it fired in, so an alert fires once per threshold and period.
CREATE TABLE spend_alert_firings (
    alert_id TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    fired_at BIGINT NOT NULL,
    CONSTRAINT spend_alert_firings_pk PRIMARY KEY (alert_id, period_start)
);
