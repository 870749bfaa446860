//! Command-line helpers shared by the examples (`#[path = "common/mod.rs"] mod common;`).
// Not every example uses every helper.
#![allow(dead_code)]

/// The value after `--name` on the command line, if given.
pub fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args();
    args.position(|a| a == name)?;
    args.next()
}

/// Whether `--name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}
