//! Black-box tests: the mock on port 0 in-process (and once as its binary), driven over raw
//! HTTP/1.1 so that the test sees exactly the bytes a gateway would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on setup failure

mod binary;
mod chat;
mod endpoints;
mod faults;
mod helpers;
mod recording;
