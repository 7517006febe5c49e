//! Tidepool: a sidecar connection-pooling proxy for MySQL/MariaDB and Redis.
//!
//! Client sockets are accepted by `server`, each served by one session task of its protocol's
//! engine (`redis::session`), which decodes commands with a sans-IO codec (`redis::resp`),
//! decides where each runs (a shared upstream lane, a dedicated upstream connection, answered
//! locally, refused) and relays the answers. Upstream connections are bounded per pool
//! (`pool` holds what both protocols share). `config` is parsed, validated and frozen before
//! anything starts.

pub mod admin;
pub mod cli;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod mysql;
pub mod pool;
pub mod redis;
pub mod registry;
pub mod server;
pub mod tls;
