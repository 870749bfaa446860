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
pub mod silence;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod workers;

/// The hasher of the maps and caches on the request path (keys, policies, limiter buckets,
/// usage tallies): foldhash, seeded per process, costs a fraction of std's SipHash for the short
/// ids and model names hashed several times per request.
pub type FastHash = foldhash::fast::RandomState;

/// A `HashMap` with [`FastHash`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;
