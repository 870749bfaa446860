//! Router tests: the real router and a real SQLite store, driven with `tower::ServiceExt::oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on setup failure

mod dashboard;
mod helpers;
mod keys;
mod people;
