//! The metering flush's database write (not a test): `UsageStore::add_usage` of one second's
//! rows at the gateway benchmark's 5,000 requests a second over 10,000 keys in 100 projects
//! (5,000 distinct rows), on SQLite and PostgreSQL, then the fold of the minute those flushes
//! wrote (`UsageStore::fold_usage`) once the minute is over, without the meter's pauses. Each
//! flush's row count is within 1% of `--rows`, as a real one's is.
//!
//! ```sh
//! cargo run --release -p keyplane-server --example bench_flush -- \
//!     [--rows 5000] [--flushes 20] [--postgres postgres://postgres@127.0.0.1:5432/postgres]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "common/mod.rs"]
mod common;
use common::arg;
use keyplane_core::ports::UsageStore;
use keyplane_core::usage::UsageRow;
use keyplane_store::{Db, PoolSettings, Store};
use std::time::{Duration, Instant};

async fn run(label: &str, url: &str, rows: usize, flushes: usize) {
    let db = Db::connect(url, &PoolSettings::default()).await.unwrap();
    db.migrate().await.unwrap();
    let store = Store::new(db);
    // A minute no other run uses, so PostgreSQL's shared database starts empty for it.
    let minute = 60 * (keyplane_core::time::now() / 60) + 60 * 1_000_000;
    let row = |key: usize| UsageRow {
        minute,
        family: "completions".into(),
        project_id: format!("proj_{:024}", key % 100),
        api_key_id: format!("key_{:024}", key),
        user_id: Some("user_000000000000000000000001".into()),
        model: "gpt-4o-mini".into(),
        requests: 1,
        input_tokens: 20,
        output_tokens: 8,
        cost_nano_usd: 7_800,
        ..UsageRow::default()
    };
    let mut times = Vec::with_capacity(flushes);
    for flush in 0..flushes {
        // Keys go round in the benchmark: each flush holds the next `rows` of 2 × `rows` keys.
        // As at a real fixed rate, the count moves by up to 2% from one flush to the next.
        let n = rows - rows / 100 + (flush * 37) % (rows / 50 + 1);
        let batch: Vec<UsageRow> = (0..n)
            .map(|i| row((flush * rows + i) % (2 * rows)))
            .collect();
        let started = Instant::now();
        store.add_usage(&batch).await.unwrap();
        times.push(started.elapsed());
    }
    // The minute is over: fold all of it, 16 (minute, project) groups a call (the meter takes
    // one at a time with pauses; this measures the work, not its pacing).
    let started = Instant::now();
    let mut groups = 0;
    loop {
        let folded = store.fold_usage(i64::MAX, 16).await.unwrap();
        groups += folded.groups;
        if folded.groups < 16 {
            break;
        }
    }
    let fold = started.elapsed();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {label} | {rows} | {:.1} | {:.1} | {:.1} | {groups} groups, {:.1} ms ({:.2} ms per flush) |",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        ms(fold),
        ms(fold) / flushes as f64,
    );
    store.db().close().await;
}

#[tokio::main]
async fn main() {
    let rows: usize = arg("--rows").map_or(5000, |s| s.parse().unwrap());
    let flushes: usize = arg("--flushes").map_or(20, |s| s.parse().unwrap());
    println!(
        "| database | rows per flush | fastest ms | median ms | slowest ms | folding the minute after |"
    );
    println!("|---|---|---|---|---|---|");
    let dir = std::env::temp_dir().join(format!("kp_bench_flush_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("kp.db").display());
    run("SQLite", &url, rows, flushes).await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(pg) = arg("--postgres") {
        run("PostgreSQL", &pg, rows, flushes).await;
    }
}
