//! Keyplane's HTTP server: the OpenAI-compatible Admin API, health endpoints, startup and
//! graceful shutdown. `keyplane serve` and `keyplane init` call [`startup`].

pub mod admin;
pub mod auth;
pub mod changes;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod keycache;
pub mod openapi;
pub mod password;
pub mod retention;
pub mod router;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod workers;
