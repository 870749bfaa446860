//! Store tests: every case runs on SQLite (a fresh file) and on PostgreSQL (a fresh database on
//! `KEYPLANE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on setup failure

mod cases;
mod gateway_cases;
mod harness;
mod people_cases;
mod session_cases;
