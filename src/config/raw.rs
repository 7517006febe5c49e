//! The configuration file exactly as written: every key optional, unknown keys rejected.
//! `validate` turns this into the frozen `Config`; nothing else reads these structs.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub drain: RawDrain,
    #[serde(default)]
    pub pool: Vec<RawPool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub socket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub statsd: Option<String>,
    pub prefix: Option<String>,
    pub flush_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrain {
    pub timeout: Option<String>,
    pub interrupt_timeout: Option<String>,
}

/// One `[[pool]]` table. Keys of both protocols live here so that a key given to the wrong
/// protocol can be refused by name instead of being silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub mode: Option<String>,
    pub max_upstream: Option<i64>,
    pub min_idle: Option<i64>,
    pub max_clients: Option<i64>,
    pub acquire_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub upstream_idle_timeout: Option<String>,
    pub upstream_max_lifetime: Option<String>,
    pub client_idle_timeout: Option<String>,
    pub leak_threshold: Option<String>,
    pub idle_in_transaction_timeout: Option<String>,
    pub warn_utilization: Option<f64>,
    pub critical_utilization: Option<f64>,
    pub max_pipeline: Option<i64>,
    pub max_command_bytes: Option<i64>,
    // MySQL only
    pub users: Option<Vec<RawUser>>,
    pub max_prepared_statements: Option<i64>,
    pub handshake_timeout: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    // Redis only
    pub max_pinned: Option<i64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub allow_commands: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub upstream_user: Option<String>,
    pub upstream_password: Option<String>,
    pub upstream_password_env: Option<String>,
}
