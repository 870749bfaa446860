use crate::{db_err, on_pool, placeholders, BeginWrite, ChunkedSql, Store};
use async_trait::async_trait;
use keyplane_core::ids::ProjectId;
use keyplane_core::ports::{StoreError, StoreResult, UsageStore};
use keyplane_core::usage::{Folded, UsageFilter, UsageRow};
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

/// A journal row's entry: a usage row without its minute and project (the journal row's own).
/// Written from borrowed fields, read back owned.
type Entry = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// The rows of one minute and project as a journal row's `entries`.
fn encode_entries(rows: &[&UsageRow]) -> StoreResult<String> {
    let entries: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                &r.family,
                &r.api_key_id,
                &r.user_id,
                &r.service_account_id,
                &r.model,
                r.requests,
                r.input_tokens,
                r.output_tokens,
                r.cached_tokens,
                r.images,
                r.cost_nano_usd,
            )
        })
        .collect();
    serde_json::to_string(&entries)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode usage: {e}")))
}

/// A journal row's entries as usage rows of `minute` and `project_id`.
fn decode_entries(minute: i64, project_id: &str, entries: &str) -> StoreResult<Vec<UsageRow>> {
    let entries: Vec<Entry> = serde_json::from_str(entries).map_err(|e| {
        StoreError::Unavailable(format!(
            "usage journal row of {project_id} at {minute}: {e}"
        ))
    })?;
    Ok(entries
        .into_iter()
        .map(|e| UsageRow {
            minute,
            family: e.0,
            project_id: project_id.to_owned(),
            api_key_id: e.1,
            user_id: e.2,
            service_account_id: e.3,
            model: e.4,
            requests: e.5,
            input_tokens: e.6,
            output_tokens: e.7,
            cached_tokens: e.8,
            images: e.9,
            cost_nano_usd: e.10,
        })
        .collect())
}

/// What identifies a minute row (`usage_minutes`' primary key).
fn identity(r: &UsageRow) -> (i64, &str, &str, &str, &str) {
    (r.minute, &r.family, &r.project_id, &r.api_key_id, &r.model)
}

/// One row per identity, counters summed (PostgreSQL refuses to update a row twice in one
/// statement), sorted by identity.
fn merge_by_identity(mut rows: Vec<UsageRow>) -> Vec<UsageRow> {
    rows.sort_unstable_by(|a, b| identity(a).cmp(&identity(b)));
    let mut merged: Vec<UsageRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match merged.last_mut() {
            Some(last) if identity(last) == identity(&r) => {
                last.absorb(&r);
                // As `MAX(user_id)` in SQL: a key's owner is the same on all its rows.
                if last.user_id.is_none() {
                    last.user_id = r.user_id;
                }
                if last.service_account_id.is_none() {
                    last.service_account_id = r.service_account_id;
                }
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// A journal row to insert.
struct JournalRow<'a> {
    minute: i64,
    project_id: &'a str,
    cost_nano_usd: i64,
    entries: String,
}

static JOURNAL_INSERT: LazyLock<ChunkedSql> = LazyLock::new(|| {
    ChunkedSql::new(|rows, marks| {
        format!(
            "INSERT INTO usage_journal (minute, project_id, cost_nano_usd, entries) VALUES {}",
            placeholders(rows, 4, 1, marks)
        )
    })
});

#[async_trait]
impl UsageStore for Store {
    /// Appends the rows to the journal: one row per minute and project, whatever the number
    /// of keys and models, in one transaction.
    async fn add_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&UsageRow> = rows.iter().collect();
        sorted.sort_unstable_by(|a, b| (a.minute, &a.project_id).cmp(&(b.minute, &b.project_id)));
        let mut journal = Vec::new();
        for group in sorted.chunk_by(|a, b| a.minute == b.minute && a.project_id == b.project_id) {
            journal.push(JournalRow {
                minute: group[0].minute,
                project_id: &group[0].project_id,
                cost_nano_usd: group.iter().map(|r| r.cost_nano_usd).sum(),
                entries: encode_entries(group)?,
            });
        }
        let marks = self.db.marks();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            for (sql, chunk) in JOURNAL_INSERT.chunks(&journal, marks) {
                let mut q = sqlx::query(sql);
                for r in chunk {
                    q = q
                        .bind(r.minute)
                        .bind(r.project_id)
                        .bind(r.cost_nano_usd)
                        .bind(&r.entries);
                }
                q.execute(&mut *tx).await.map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)
        })
    }

    /// Each (minute, project) group in its own transaction: its journal rows deleted, their
    /// entries summed per key and model and added to `usage_minutes`. Two instances folding
    /// the same group fold each journal row once: the delete decides who has it.
    async fn fold_usage(&self, before: i64, limit: usize) -> StoreResult<Folded> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let groups: Vec<(i64, String)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT DISTINCT minute, project_id FROM usage_journal WHERE minute < $1 \
                 ORDER BY minute, project_id LIMIT $2",
            )
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(db_err)?;
        let marks = self.db.marks();
        for (minute, project_id) in &groups {
            on_pool!(&self.db, pool => {
                let mut tx = pool.begin_write().await.map_err(db_err)?;
                let texts: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM usage_journal WHERE minute = $1 AND project_id = $2 \
                     RETURNING entries",
                )
                .bind(minute)
                .bind(project_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let mut rows = Vec::new();
                for text in &texts {
                    rows.extend(decode_entries(*minute, project_id, text)?);
                }
                let rows = merge_by_identity(rows);
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
            })?;
        }
        Ok(Folded {
            groups: groups.len(),
            oldest_minute: groups.first().map(|(m, _)| *m),
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
        sql.push_str(" GROUP BY bucket, family, project_id, api_key_id, model");
        // The journal's rows of the range (and projects): filtered and bucketed below.
        let mut journal_sql = String::from(
            "SELECT minute, project_id, entries FROM usage_journal WHERE minute >= $1 AND minute < $2",
        );
        let mut journal_next = 3;
        in_list(
            &mut journal_sql,
            "project_id",
            &f.project_ids,
            &mut journal_next,
        );
        let (rows, journal): (Vec<Row>, Vec<(i64, String, String)>) = on_pool!(&self.db, pool => {
            async {
                // One snapshot for both: a fold committing between the two reads would count
                // its rows twice or not at all.
                let mut tx = pool.begin_snapshot().await?;
                let mut q = sqlx::query_as(&sql).bind(bucket_seconds).bind(f.start).bind(f.end);
                if let Some(family) = &f.family {
                    q = q.bind(family);
                }
                for v in f.project_ids.iter().chain(&f.api_key_ids).chain(&f.user_ids).chain(&f.models) {
                    q = q.bind(v);
                }
                let rows = q.fetch_all(&mut *tx).await?;
                let mut q = sqlx::query_as(&journal_sql).bind(f.start).bind(f.end);
                for v in &f.project_ids {
                    q = q.bind(v);
                }
                let journal = q.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>((rows, journal))
            }
            .await
        })
        .map_err(db_err)?;
        let mut out: Vec<UsageRow> = rows
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
            .collect();
        let listed = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        for (minute, project_id, entries) in &journal {
            let bucket = minute - (minute - f.start).rem_euclid(bucket_seconds.max(1));
            for r in decode_entries(bucket, project_id, entries)? {
                let user_listed = f.user_ids.is_empty()
                    || r.user_id.as_deref().is_some_and(|u| listed(&f.user_ids, u));
                if f.family.as_ref().is_none_or(|family| *family == r.family)
                    && listed(&f.api_key_ids, &r.api_key_id)
                    && listed(&f.models, &r.model)
                    && user_listed
                {
                    out.push(r);
                }
            }
        }
        if journal.is_empty() {
            out.sort_by_key(|r| r.minute);
            return Ok(out);
        }
        // Minute rows and journal entries of one bucket and identity become one row.
        let mut out = merge_by_identity(out);
        out.sort_by_key(|r| r.minute);
        Ok(out)
    }

    async fn cost_since(&self, project: Option<&ProjectId>, since: i64) -> StoreResult<i64> {
        // Minute rows and journal in one statement, so one snapshot. Two statements, not one
        // with `($1 = '' OR project_id = $1)`: with the OR, both planners walk the primary
        // key's whole month range instead of the project's index.
        let total: i64 = on_pool!(&self.db, pool => match project {
            Some(p) => sqlx::query_scalar(
                "SELECT CAST(COALESCE((SELECT SUM(cost_nano_usd) FROM usage_minutes \
                 WHERE project_id = $1 AND minute >= $2), 0) \
                 + COALESCE((SELECT SUM(cost_nano_usd) FROM usage_journal \
                 WHERE project_id = $1 AND minute >= $2), 0) AS BIGINT)",
            )
            .bind(p.as_str())
            .bind(since)
            .fetch_one(pool)
            .await,
            None => sqlx::query_scalar(
                "SELECT CAST(COALESCE((SELECT SUM(cost_nano_usd) FROM usage_minutes \
                 WHERE minute >= $1), 0) \
                 + COALESCE((SELECT SUM(cost_nano_usd) FROM usage_journal \
                 WHERE minute >= $1), 0) AS BIGINT)",
            )
            .bind(since)
            .fetch_one(pool)
            .await,
        })
        .map_err(db_err)?;
        Ok(total)
    }
}
