-- The usage journal. Keep in step with the other backend's 0006_usage_journal.sql: same statements.
-- The metering writer appends each second's usage here: one row per minute and project, that
-- flush's rows for them encoded together as a JSON array of
-- [family, api_key_id, user_id, service_account_id, model, requests, input_tokens,
--  output_tokens, cached_tokens, images, cost_nano_usd], with their cost summed. Usage and cost
-- reads count these rows with usage_minutes; once a minute is over its rows are folded into
-- usage_minutes (deleted and added there in one transaction). One insert per project a second,
-- instead of one upsert per key and model, is what keeps the writer cheap at thousands of keys.
CREATE TABLE usage_journal (
    minute BIGINT NOT NULL,
    project_id TEXT NOT NULL,
    cost_nano_usd BIGINT NOT NULL,
    entries TEXT NOT NULL
);
CREATE INDEX usage_journal_by_minute ON usage_journal (minute, project_id);
