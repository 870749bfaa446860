use crate::rows::{AuditRow, AUDIT_COLUMNS};
use crate::{db_err, on_pool, Store};
use async_trait::async_trait;
use keyplane_core::audit::{AuditCursor, AuditFilter, AuditIndex, AuditQuery};
use keyplane_core::model::AuditEvent;
use keyplane_core::pagination::Page;
use keyplane_core::ports::{AuditStore, StoreError, StoreResult};
use keyplane_core::time::UnixSeconds;

/// A bind value of a query built at run time.
enum Arg {
    Int(i64),
    Text(String),
}

/// SQL text with `$n` placeholders and the values they stand for.
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }

    fn list(&mut self, values: impl IntoIterator<Item = String>) -> String {
        values
            .into_iter()
            .map(|v| self.arg(Arg::Text(v)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The WHERE conditions of `filter` (every one an indexed column).
fn conditions(filter: &AuditFilter, sql: &mut Sql) -> Vec<String> {
    let mut out = Vec::new();
    let range = filter.effective_at;
    for (op, bound) in [
        (">", range.gt),
        (">=", range.gte),
        ("<", range.lt),
        ("<=", range.lte),
    ] {
        if let Some(t) = bound {
            let p = sql.arg(Arg::Int(t));
            out.push(format!("effective_at {op} {p}"));
        }
    }
    if !filter.project_ids.is_empty() {
        let l = sql.list(filter.project_ids.iter().cloned());
        out.push(format!("project_id IN ({l})"));
    }
    if !filter.event_types.is_empty() {
        let l = sql.list(filter.event_types.iter().cloned());
        out.push(format!("event_type IN ({l})"));
    }
    if !filter.actor_ids.is_empty() {
        // An actor id names a user, a service account or the API key used.
        let l = sql.list(filter.actor_ids.iter().cloned());
        out.push(format!("(actor_id IN ({l}) OR actor_key_id IN ({l}))"));
    }
    if !filter.actor_emails.is_empty() {
        let l = sql.list(filter.actor_emails.iter().map(|e| e.to_lowercase()));
        out.push(format!("actor_email IN ({l})"));
    }
    if !filter.resource_ids.is_empty() {
        let l = sql.list(filter.resource_ids.iter().cloned());
        out.push(format!("resource_id IN ({l})"));
    }
    out
}

#[async_trait]
impl AuditStore for Store {
    async fn query_audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>> {
        // Newest first by (effective_at, seq): keyset on the pair keeps pages stable.
        let cursor_id = match &query.cursor {
            AuditCursor::Newest => None,
            AuditCursor::After(id) | AuditCursor::Before(id) => Some(id),
        };
        let position: Option<(i64, i64)> = match cursor_id {
            None => None,
            Some(id) => Some(
                on_pool!(&self.db, pool => {
                    sqlx::query_as("SELECT effective_at, seq FROM audit_events WHERE id = $1")
                        .bind(id).fetch_optional(pool).await
                })
                .map_err(db_err)?
                .ok_or_else(|| StoreError::UnknownCursor(id.clone()))?,
            ),
        };
        let mut sql = Sql::default();
        let mut conds = conditions(&query.filter, &mut sql);
        let backwards = matches!(query.cursor, AuditCursor::Before(_));
        if let Some((t, seq)) = position {
            let (pt, ps) = (sql.arg(Arg::Int(t)), sql.arg(Arg::Int(seq)));
            let op = if backwards { ">" } else { "<" };
            conds.push(format!(
                "(effective_at {op} {pt} OR (effective_at = {pt} AND seq {op} {ps}))"
            ));
        }
        let order = if backwards { "ASC" } else { "DESC" };
        let limit = sql.arg(Arg::Int(i64::from(query.limit.get()) + 1));
        sql.text = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events{}{} ORDER BY effective_at {order}, seq {order} LIMIT {limit}",
            if conds.is_empty() { "" } else { " WHERE " },
            conds.join(" AND "),
        );
        let rows: Vec<AuditRow> = on_pool!(&self.db, pool => {
            let mut q = sqlx::query_as(&sql.text);
            for a in &sql.args {
                q = match a {
                    Arg::Int(i) => q.bind(*i),
                    Arg::Text(s) => q.bind(s.as_str()),
                };
            }
            q.fetch_all(pool).await
        })
        .map_err(db_err)?;
        let mut page = Page::from_overfetch(
            rows.into_iter().map(AuditEvent::from).collect(),
            query.limit,
        );
        if backwards {
            page.items.reverse();
        }
        Ok(page)
    }

    async fn prune_audit_events(&self, before: UnixSeconds) -> StoreResult<u64> {
        on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM audit_events WHERE effective_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(db_err)
    }
}

impl Store {
    /// Files audit events written before the filter columns existed (migration 0003) under
    /// them; returns how many it updated. Cheap when there are none: it reads only rows whose
    /// four columns are all empty.
    pub async fn backfill_audit_index(&self) -> StoreResult<u64> {
        let mut after = 0_i64;
        let mut updated = 0_u64;
        loop {
            let rows: Vec<(i64, String, String, String)> = on_pool!(&self.db, pool => {
                sqlx::query_as(
                    "SELECT seq, id, actor, details FROM audit_events WHERE seq > $1 \
                     AND actor_id IS NULL AND actor_key_id IS NULL AND actor_email IS NULL \
                     AND resource_id IS NULL ORDER BY seq LIMIT 500",
                )
                .bind(after)
                .fetch_all(pool)
                .await
            })
            .map_err(db_err)?;
            let Some(last) = rows.last() else {
                return Ok(updated);
            };
            after = last.0;
            for (_, id, actor, details) in &rows {
                let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
                let index = AuditIndex::of(&parse(actor), &parse(details));
                if index == AuditIndex::default() {
                    continue;
                }
                on_pool!(&self.db, pool => {
                    sqlx::query(
                        "UPDATE audit_events SET actor_id = $2, actor_key_id = $3, \
                         actor_email = $4, resource_id = $5 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(&index.actor_id)
                    .bind(&index.actor_key_id)
                    .bind(&index.actor_email)
                    .bind(&index.resource_id)
                    .execute(pool)
                    .await
                    .map(|_| ())
                })
                .map_err(db_err)?;
                updated += 1;
            }
        }
    }
}
