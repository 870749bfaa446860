use crate::{db_err, on_pool, placeholders, BeginWrite, ChunkedSql, Store};
use async_trait::async_trait;
use keyplane_core::ids::ProjectId;
use keyplane_core::ports::{StoreResult, UsageStore};
use keyplane_core::usage::{UsageFilter, UsageRow};
use std::sync::LazyLock;

#[derive(sqlx::FromRow)]
struct Row {
    bucket: i64,
    family: String,
    project_id: String,
    api_key_id: String,
    user_id: Option<String>,
    service_account_id: Option<String>,
    model: String,
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    images: i64,
    cost_nano_usd: i64,
}

/// `AND col IN ($n, …)` for a non-empty list, numbering placeholders from `next`.
fn in_list(sql: &mut String, col: &str, values: &[String], next: &mut usize) {
    if values.is_empty() {
        return;
    }
    let marks: Vec<String> = values
        .iter()
        .map(|_| {
            *next += 1;
            format!("${}", *next - 1)
        })
        .collect();
    sql.push_str(&format!(" AND {col} IN ({})", marks.join(", ")));
}

/// The additive upsert of usage rows, one text per chunk size.
static USAGE_UPSERT: LazyLock<ChunkedSql> = LazyLock::new(|| {
    ChunkedSql::new(|rows, marks| {
        format!(
            "INSERT INTO usage_minutes (minute, family, project_id, api_key_id, user_id, \
             service_account_id, model, requests, input_tokens, output_tokens, cached_tokens, \
             images, cost_nano_usd) VALUES {} \
             ON CONFLICT (minute, family, project_id, api_key_id, model) DO UPDATE SET \
             requests = usage_minutes.requests + excluded.requests, \
             input_tokens = usage_minutes.input_tokens + excluded.input_tokens, \
             output_tokens = usage_minutes.output_tokens + excluded.output_tokens, \
             cached_tokens = usage_minutes.cached_tokens + excluded.cached_tokens, \
             images = usage_minutes.images + excluded.images, \
             cost_nano_usd = usage_minutes.cost_nano_usd + excluded.cost_nano_usd",
            placeholders(rows, 13, 1, marks)
        )
    })
});

#[async_trait]
impl UsageStore for Store {
    async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One row per conflict key: PostgreSQL refuses to update a row twice in one statement.
        // Rows are sorted by reference and only a key that repeats is copied to be merged (the
        // metering tally hands over rows that are already distinct).
        fn conflict_key(r: &UsageRow) -> (i64, &str, &str, &str, &str) {
            (r.minute, &r.family, &r.project_id, &r.api_key_id, &r.model)
        }
        let mut sorted: Vec<&UsageRow> = rows.iter().collect();
        sorted.sort_unstable_by(|a, b| conflict_key(a).cmp(&conflict_key(b)));
        let mut rows: Vec<std::borrow::Cow<'_, UsageRow>> = Vec::with_capacity(sorted.len());
        for r in sorted {
            match rows.last_mut() {
                Some(last) if conflict_key(last) == conflict_key(r) => last.to_mut().absorb(r),
                _ => rows.push(std::borrow::Cow::Borrowed(r)),
            }
        }
        // Multi-row upserts, in chunks of fixed sizes (see `CHUNK_SIZES`).
        let marks = self.db.marks();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            for (sql, chunk) in USAGE_UPSERT.chunks(&rows, marks) {
                let mut q = sqlx::query(sql);
                for r in chunk {
                    q = q
                        .bind(r.minute)
                        .bind(&r.family)
                        .bind(&r.project_id)
                        .bind(&r.api_key_id)
                        .bind(&r.user_id)
                        .bind(&r.service_account_id)
                        .bind(&r.model)
                        .bind(r.requests)
                        .bind(r.input_tokens)
                        .bind(r.output_tokens)
                        .bind(r.cached_tokens)
                        .bind(r.images)
                        .bind(r.cost_nano_usd);
                }
                q.execute(&mut *tx).await.map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)
        })
    }

    async fn usage(&self, f: &UsageFilter, bucket_seconds: i64) -> StoreResult<Vec<UsageRow>> {
        // $1 bucket width, $2 start, $3 end, [$4 family], then the IN lists.
        let mut sql = String::from(
            "SELECT (minute - ((minute - $2) % $1)) AS bucket, family, project_id, api_key_id, \
             MAX(user_id) AS user_id, MAX(service_account_id) AS service_account_id, model, \
             CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
             CAST(SUM(images) AS BIGINT) AS images, CAST(SUM(cost_nano_usd) AS BIGINT) AS cost_nano_usd \
             FROM usage_minutes WHERE minute >= $2 AND minute < $3",
        );
        let mut next = 4;
        if f.family.is_some() {
            sql.push_str(" AND family = $4");
            next = 5;
        }
        in_list(&mut sql, "project_id", &f.project_ids, &mut next);
        in_list(&mut sql, "api_key_id", &f.api_key_ids, &mut next);
        in_list(&mut sql, "user_id", &f.user_ids, &mut next);
        in_list(&mut sql, "model", &f.models, &mut next);
        sql.push_str(" GROUP BY bucket, family, project_id, api_key_id, model ORDER BY bucket");
        let rows: Vec<Row> = on_pool!(&self.db, pool => {
            let mut q = sqlx::query_as(&sql).bind(bucket_seconds).bind(f.start).bind(f.end);
            if let Some(family) = &f.family {
                q = q.bind(family);
            }
            for v in f.project_ids.iter().chain(&f.api_key_ids).chain(&f.user_ids).chain(&f.models) {
                q = q.bind(v);
            }
            q.fetch_all(pool).await
        })
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                minute: r.bucket,
                family: r.family,
                project_id: r.project_id,
                api_key_id: r.api_key_id,
                user_id: r.user_id,
                service_account_id: r.service_account_id,
                model: r.model,
                requests: r.requests,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cached_tokens: r.cached_tokens,
                images: r.images,
                cost_nano_usd: r.cost_nano_usd,
            })
            .collect())
    }

    async fn cost_since(&self, project: Option<&ProjectId>, since: i64) -> StoreResult<i64> {
        // Two statements, not one with `($2 = '' OR project_id = $2)`: with the OR, both
        // planners walk the primary key's whole month range instead of the project's index.
        let total: Option<i64> = on_pool!(&self.db, pool => match project {
            Some(p) => sqlx::query_scalar(
                "SELECT CAST(SUM(cost_nano_usd) AS BIGINT) FROM usage_minutes \
                 WHERE project_id = $1 AND minute >= $2",
            )
            .bind(p.as_str())
            .bind(since)
            .fetch_one(pool)
            .await,
            None => sqlx::query_scalar(
                "SELECT CAST(SUM(cost_nano_usd) AS BIGINT) FROM usage_minutes WHERE minute >= $1",
            )
            .bind(since)
            .fetch_one(pool)
            .await,
        })
        .map_err(db_err)?;
        Ok(total.unwrap_or(0))
    }
}
