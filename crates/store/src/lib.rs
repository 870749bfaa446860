//! Keyplane's storage: the ports of `keyplane_core::ports` on sqlx, for SQLite and PostgreSQL.
//!
//! One implementation serves both databases. [`Db`] holds a native pool of either kind; every
//! query is a shared SQL string with `$n` placeholders, run through [`on_pool!`], which expands
//! the same code once per backend so each arm is type-checked against its own driver.

mod alerts;
mod audit;
mod changes;
mod keys;
mod org;
mod people;
mod policy;
mod projects;
mod rows;
mod service_accounts;
mod sessions;
mod usage;

use keyplane_core::ports::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// A connection pool to one of the supported databases, chosen by URL scheme.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Rows per statement in the batched writes and reads (the metering flush, `last_used_at`, the
/// key cache's reconciliation). A batch is cut into chunks of these sizes only, largest first,
/// so each statement is one of a few fixed texts: sqlx prepares each once per connection and
/// then takes it from its statement cache. With one text per batch size, every flush prepared
/// its statements anew (a third of SQLite's time in the flush) and pushed the other queries
/// out of the cache. 256 rows of 13 values stay under SQLite's limit of 32,766 parameters.
pub(crate) const CHUNK_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

/// How a batched statement writes its placeholders. PostgreSQL numbers them (`$1`). SQLite
/// gets plain `?`: sqlx asks SQLite for each parameter's name when binding, and for named or
/// numbered parameters that lookup walks a list of all of them, quadratic in a statement of
/// 3,328 (a 5,000-row flush took 340 ms instead of 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marks {
    Question,
    Dollar,
}

impl Db {
    pub(crate) fn marks(&self) -> Marks {
        match self {
            Db::Sqlite(_) => Marks::Question,
            Db::Postgres(_) => Marks::Dollar,
        }
    }
}

/// One SQL text per chunk size and placeholder style, made by `sql(rows, marks)`; see
/// [`CHUNK_SIZES`].
pub(crate) struct ChunkedSql {
    question: Vec<String>,
    dollar: Vec<String>,
}

impl ChunkedSql {
    pub(crate) fn new(sql: impl Fn(usize, Marks) -> String) -> Self {
        let texts = |marks| CHUNK_SIZES.iter().map(|n| sql(*n, marks)).collect();
        Self {
            question: texts(Marks::Question),
            dollar: texts(Marks::Dollar),
        }
    }

    /// `items` in chunks of [`CHUNK_SIZES`], largest first (at most 3 chunks of each smaller
    /// size), each with the text for its size.
    pub(crate) fn chunks<'s, 'i, T>(
        &'s self,
        items: &'i [T],
        marks: Marks,
    ) -> impl Iterator<Item = (&'s str, &'i [T])> {
        let texts = match marks {
            Marks::Question => &self.question,
            Marks::Dollar => &self.dollar,
        };
        let mut rest = items;
        std::iter::from_fn(move || {
            let i = CHUNK_SIZES.iter().position(|s| *s <= rest.len())?;
            let (chunk, tail) = rest.split_at(CHUNK_SIZES[i]);
            rest = tail;
            Some((texts[i].as_str(), chunk))
        })
    }
}

/// `(…), (…)`: `rows` groups of `columns` placeholders, numbered from `first` when numbered.
pub(crate) fn placeholders(rows: usize, columns: usize, first: usize, marks: Marks) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            match marks {
                Marks::Question => out.push('?'),
                Marks::Dollar => {
                    out.push('$');
                    out.push_str(&(first + r * columns + c).to_string());
                }
            }
        }
        out.push(')');
    }
    out
}

/// Runs `$body` with `$pool` bound to the native pool of whichever backend `$db` is.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Begins a write transaction. Every transaction of this store writes, so on SQLite it is
/// `BEGIN IMMEDIATE`: the write lock is taken up front, where the busy timeout applies. A
/// deferred transaction that reads first and then writes cannot wait for a lock another
/// instance holds on the same file; SQLite fails it at once with "database is locked".
///
/// Reads that must see one state across statements take [`begin_snapshot`](Self::begin_snapshot)
/// instead.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
    /// Begins a read-only transaction whose statements all see the database as of its first
    /// read (SQLite's deferred transaction in WAL mode; PostgreSQL's repeatable read).
    fn begin_snapshot(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
    fn begin_snapshot(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin_with("BEGIN")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin()
    }
    fn begin_snapshot(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send {
        self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    }
}

/// Writes audit events on an open transaction (`&mut *tx`), then moves the store's revision
/// (see `0005_revision.sql`), even when there are no events: every write that calls this is one
/// the caches may hold. It is the last statement of each transaction that calls it: the
/// revision's row lock is then held only while committing, and no transaction waits for another
/// while holding it.
macro_rules! write_events {
    ($tx:expr, $events:expr) => {
        for event in $events {
            sqlx::query(
                "INSERT INTO audit_events (id, event_type, effective_at, project_id, actor, details, \
                 actor_id, actor_key_id, actor_email, resource_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&event.id)
            .bind(&event.event_type)
            .bind(event.effective_at)
            .bind(&event.project_id)
            .bind(event.actor.to_string())
            .bind(event.details.to_string())
            .bind(&event.index.actor_id)
            .bind(&event.index.actor_key_id)
            .bind(&event.index.actor_email)
            .bind(&event.index.resource_id)
            .execute(&mut *$tx)
            .await
            .map_err($crate::db_err)?;
        }
        sqlx::query("UPDATE store_revision SET revision = revision + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await
            .map_err($crate::db_err)?;
    };
}
pub(crate) use write_events;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL scheme in '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedScheme(String),
    #[error("cannot open the database: {0}")]
    Open(#[source] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(
        "the database schema is at version {found}, newer than this Keyplane knows (up to {known}): \
         a newer Keyplane has migrated it. Upgrade this instance to the same release; it will not \
         serve against a schema it does not know."
    )]
    SchemaTooNew { found: i64, known: i64 },
}

/// Maps sqlx's "an applied migration is missing here" to the newer-schema refusal.
fn migrate_error(e: sqlx::migrate::MigrateError, known: i64) -> ConnectError {
    match e {
        sqlx::migrate::MigrateError::VersionMissing(found) if found > known => {
            ConnectError::SchemaTooNew { found, known }
        }
        e => ConnectError::Migrate(e),
    }
}

/// Pool size and timeouts.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Strips credentials from a database URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Db {
    /// Opens a pool for `url`: `sqlite://PATH` (file created when missing), `sqlite::memory:`,
    /// or `postgres://…` / `postgresql://…`. Any other scheme is an error.
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Self, ConnectError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(ConnectError::Open)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // Instances starting together on a new file race to switch it to WAL, which SQLite
            // refuses at once ("database is locked") instead of waiting: the loser retries.
            let pool = retry_raced(
                "opening",
                || {
                    SqlitePoolOptions::new()
                        .max_connections(settings.max_connections.min(8))
                        .acquire_timeout(settings.acquire_timeout)
                        .connect_with(options.clone())
                },
                |e| matches!(e, sqlx::Error::Database(d) if busy(d.as_ref())),
            )
            .await
            .map_err(ConnectError::Open)?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(ConnectError::Open)?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(ConnectError::Open)?;
            Ok(Db::Postgres(pool))
        } else {
            Err(ConnectError::UnsupportedScheme(redact_url(url)))
        }
    }

    /// Applies the embedded migrations of this backend. PostgreSQL serializes concurrent
    /// migrators with an advisory lock (sqlx takes it); SQLite has none, so an instance that
    /// loses the race to another one starting on the same file (it finds the tables created
    /// under it) waits and tries again, by then finding the migrations applied.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        match self {
            Db::Sqlite(pool) => {
                let migrator = sqlx::migrate!("./migrations/sqlite");
                let known = latest(&migrator);
                retry_raced(
                    "migration",
                    || migrator.run(pool),
                    |e| !matches!(e, sqlx::migrate::MigrateError::VersionMissing(_)),
                )
                .await
                .map_err(|e| migrate_error(e, known))
            }
            Db::Postgres(pool) => {
                let migrator = sqlx::migrate!("./migrations/postgres");
                let known = latest(&migrator);
                migrator
                    .run(pool)
                    .await
                    .map_err(|e| migrate_error(e, known))
            }
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Runs `attempt` until it succeeds, fails with an error `raced` does not accept, or has been
/// retried 10 times (waiting 100 ms, 200 ms, … in between): for instances that start together
/// on one SQLite file and race to set it up.
async fn retry_raced<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
    raced: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if raced(&e) && tries < 10 => {
                tries += 1;
                tracing::debug!(error = %e, attempt = tries, "{what} raced another instance; retrying");
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            done => return done,
        }
    }
}

/// SQLITE_BUSY or one of its extended codes: another connection holds the lock.
fn busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

fn latest(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
            "already exists ({})",
            db.constraint().unwrap_or("unique")
        )),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl Store {
    /// The `seq` of the row an `after` cursor names: `None` without a cursor,
    /// [`StoreError::UnknownCursor`] when `sql` (the cursor bound as `$1`, then `scope`) finds
    /// no row of this list.
    pub(crate) async fn cursor(
        &self,
        after: &Option<String>,
        sql: &str,
        scope: &[&str],
    ) -> Result<Option<i64>, StoreError> {
        let Some(id) = after else {
            return Ok(None);
        };
        let found: Option<i64> = on_pool!(&self.db, pool => {
            let mut q = sqlx::query_scalar(sql).bind(id.as_str());
            for s in scope {
                q = q.bind(*s);
            }
            q.fetch_optional(pool).await
        })
        .map_err(db_err)?;
        found
            .map(Some)
            .ok_or_else(|| StoreError::UnknownCursor(id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_the_fixed_sizes_largest_first() {
        // Each text is its size, so the pairing of texts and chunks is checked too.
        let set = ChunkedSql::new(|rows, _| rows.to_string());
        let sizes = |n: usize| -> Vec<usize> {
            set.chunks(&vec![0u8; n], Marks::Question)
                .map(|(text, chunk)| {
                    assert_eq!(text, chunk.len().to_string());
                    chunk.len()
                })
                .collect()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(7), [4, 1, 1, 1]);
        assert_eq!(sizes(341), [256, 64, 16, 4, 1]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 4, 4]);
        for n in 0..2_000 {
            let s = sizes(n);
            assert_eq!(s.iter().sum::<usize>(), n);
            assert!(s.windows(2).all(|w| w[0] >= w[1]));
            // Never more than three chunks of a size below the largest.
            for size in &CHUNK_SIZES[1..] {
                assert!(s.iter().filter(|x| *x == size).count() <= 3, "{n}: {s:?}");
            }
        }
    }

    #[test]
    fn placeholders_number_rows_after_each_other() {
        let d = Marks::Dollar;
        assert_eq!(placeholders(2, 3, 1, d), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 3, 2, d), "($2, $3, $4)");
        assert_eq!(placeholders(2, 2, 5, Marks::Question), "(?, ?), (?, ?)");
        let set = ChunkedSql::new(|rows, marks| placeholders(rows, 13, 1, marks));
        let text = |rows: usize, marks| set.chunks(&vec![0u8; rows], marks).next().unwrap().0;
        assert!(text(256, d).ends_with("$3328)"));
        assert_eq!(text(1, d), placeholders(1, 13, 1, d));
        assert_eq!(text(4, Marks::Question).matches('?').count(), 52);
    }

    #[test]
    fn redact_url_hides_credentials() {
        assert_eq!(
            redact_url("postgres://user:secret@db:5432/x"),
            "postgres://***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://keyplane.db"), "sqlite://keyplane.db");
    }

    #[test]
    fn migration_sets_match() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let names = |sub: &str| {
            let mut v: Vec<String> = std::fs::read_dir(format!("{dir}/{sub}"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("sqlite"), names("postgres"));
        assert!(!names("sqlite").is_empty());
        // Same statements too: only the auto-increment spelling and comments may differ.
        let body = |sub: &str, name: &str| {
            std::fs::read_to_string(format!("{dir}/{sub}/{name}"))
                .unwrap()
                .replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for name in names("sqlite") {
            assert_eq!(
                body("sqlite", &name),
                body("postgres", &name),
                "{name} differs"
            );
        }
    }
}

/// The sqlx implementation of every storage port.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}
