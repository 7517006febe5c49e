//! Configuration: the TOML file is parsed into `raw` structs, validated into an immutable
//! `Config`, and shared as `Arc<Config>`. `tidepool check` and `tidepool run` use the same
//! `load`, so a file that checks is a file that runs.

pub mod diff;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use validate::ConfigError;

/// The validated, frozen configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub drain: DrainConfig,
    #[serde(rename = "pool")]
    pub pools: Vec<PoolConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminConfig {
    /// Unix socket of the admin interface; `None` disables it.
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsConfig {
    /// statsd `host:port`; `None` disables metrics export.
    pub statsd: Option<String>,
    pub prefix: String,
    #[serde(with = "human")]
    pub flush_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainConfig {
    /// SIGTERM: how long open work may run before clients are closed.
    #[serde(with = "human")]
    pub timeout: Duration,
    /// SIGINT: the same, shorter.
    #[serde(with = "human")]
    pub interrupt_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Mysql,
    Redis,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Mysql => "mysql",
            Protocol::Redis => "redis",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    Transaction,
    Session,
}

/// Where a pool accepts clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A secret from the file or the environment. It never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolConfig {
    pub name: String,
    pub protocol: Protocol,
    pub listen: ListenAddr,
    /// `host:port`, resolved at each connect so DNS changes are followed.
    pub upstream: String,
    pub mode: PoolMode,
    /// The hard bound on upstream connections (Redis: shared lanes).
    pub max_upstream: usize,
    /// MySQL: connections kept open when idle (Redis pools refuse the key).
    #[serde(skip_serializing_if = "is_zero")]
    pub min_idle: usize,
    pub max_clients: usize,
    #[serde(with = "human")]
    pub acquire_timeout: Duration,
    #[serde(with = "human")]
    pub connect_timeout: Duration,
    #[serde(with = "human")]
    pub upstream_idle_timeout: Duration,
    #[serde(with = "human")]
    pub upstream_max_lifetime: Duration,
    /// `None`: idle clients that hold nothing are never closed.
    #[serde(with = "human_opt")]
    pub client_idle_timeout: Option<Duration>,
    #[serde(with = "human")]
    pub leak_threshold: Duration,
    #[serde(with = "human_opt")]
    pub idle_in_transaction_timeout: Option<Duration>,
    pub warn_utilization: f64,
    pub critical_utilization: f64,
    /// Commands one client may have in flight before the proxy stops reading from it.
    pub max_pipeline: usize,
    /// The largest single command (or MySQL packet) accepted from a client.
    pub max_command_bytes: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
    /// MySQL-only keys (flat in the file, like every pool key).
    #[serde(flatten)]
    pub mysql: Option<MysqlPoolConfig>,
    /// Redis-only keys (flat in the file, like every pool key).
    #[serde(flatten)]
    pub redis: Option<RedisPoolConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MysqlPoolConfig {
    /// How long a client may take over its side of the handshake (answering the greeting,
    /// TLS) before it is refused; it holds a slot of max_clients meanwhile.
    #[serde(with = "human")]
    pub handshake_timeout: Duration,
    /// Prepared statements cached per upstream connection (least recently used closed beyond).
    pub max_prepared_statements: usize,
    /// TLS offered to clients with this certificate chain and key (PEM files).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsConfig {
    #[serde(rename = "tls_cert")]
    pub cert: PathBuf,
    #[serde(rename = "tls_key")]
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserConfig {
    pub user: String,
    pub password: Secret,
    pub upstream_user: String,
    pub upstream_password: Secret,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedisPoolConfig {
    /// Dedicated connections (MULTI/WATCH, blocking commands, pub/sub), beyond `max_upstream`.
    pub max_pinned: usize,
    /// ACL user for clients' AUTH and for the upstream; `None` = the default user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// What clients must AUTH with; also used upstream. `None` = no AUTH required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Commands refused by default that the operator allows (upper case, e.g. "CLIENT KILL").
    pub allow_commands: Vec<String>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            source: e,
        })?;
        Self::from_toml(&text)
    }

    /// Only `[admin] socket`, for the admin client: finding the socket must not need the
    /// proxy's secrets (a `password_env` the operator's shell does not have).
    pub fn admin_socket(path: &Path) -> Result<Option<PathBuf>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            source: e,
        })?;
        let raw: raw::RawConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        Ok(raw.admin.socket.map(PathBuf::from))
    }

    /// Parses and validates configuration text (environment variables are read for
    /// `*_env` keys).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        validate::validate(raw, &|name| std::env::var(name).ok())
    }

    /// The configuration as TOML with every secret redacted (what `check` and
    /// `show config` print).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Human durations ("5s", "10m") in and out.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration like \"5s\" or \"10m\")"))
}

mod human {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}

mod human_opt {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_str("0s"),
        }
    }
}
