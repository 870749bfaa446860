//! Keyplane's domain: identifiers, the API key format, scopes, roles, pagination and the
//! storage ports. Nothing here performs I/O or knows about HTTP or SQL.

pub mod access;
pub mod audit;
pub mod catalog;
pub mod endpoints;
pub mod error;
pub mod ids;
pub mod keys;
pub mod model;
pub mod pagination;
pub mod people;
pub mod policy;
pub mod ports;
pub mod ratelimit;
pub mod scopes;
pub mod sessions;
pub mod time;
pub mod usage;

pub use error::DomainError;
