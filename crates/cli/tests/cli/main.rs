//! Black-box tests of the `keyplane` client: the real binary against a real `keyplane serve`
//! (SQLite, port 0) for every endpoint Keyplane serves, and against a loopback fault server for
//! retries, error hints and the exact requests and query strings a real server does not reveal.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on setup failure

mod errors;
mod helpers;
mod listing;
mod people;
mod requests;
mod resources;
mod retries;
mod secrets;
