//! Raw file structs → validated `Config`. Every error names its key path
//! (`pool[1].max_upstream must be >= 1`), and all of them are reported at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawConfig, RawPool, RawUser};
use super::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config is not valid TOML: {0}")]
    Parse(String),
    #[error("invalid config:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

/// Commands a Redis pool may be told to pass through (`allow_commands`). Others that the proxy
/// refuses (MONITOR, SYNC, …) change the connection's protocol and can never be allowed.
pub const ALLOWABLE_REDIS_COMMANDS: &[&str] = &[
    "CLIENT KILL",
    "CLIENT PAUSE",
    "CLIENT UNPAUSE",
    "CLIENT UNBLOCK",
    "DEBUG",
    "SHUTDOWN",
];

/// Collects errors with their key paths.
struct Checker<'a> {
    errors: Vec<String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Checker<'_> {
    fn err(&mut self, path: &str, msg: impl fmt::Display) {
        self.errors.push(format!("{path} {msg}"));
    }

    fn duration(&mut self, path: &str, v: &Option<String>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => parse_duration(s).unwrap_or_else(|e| {
                self.err(path, format!("is not a duration: {e}"));
                default
            }),
        }
    }

    fn count(&mut self, path: &str, v: Option<i64>, default: usize, min: i64) -> usize {
        match v {
            None => default,
            Some(n) if n < min => {
                self.err(path, format!("must be >= {min} (got {n})"));
                default
            }
            Some(n) => n as usize,
        }
    }

    /// A secret given inline or through an environment variable, not both.
    fn secret(
        &mut self,
        path: &str,
        inline: &Option<String>,
        env_key: &str,
        env: &Option<String>,
    ) -> Option<Secret> {
        match (inline, env) {
            (Some(_), Some(_)) => {
                self.err(path, format!("and {env_key} are both set; use one"));
                None
            }
            (Some(p), None) => Some(Secret::new(p.clone())),
            (None, Some(var)) => match (self.env)(var) {
                Some(v) => Some(Secret::new(v)),
                None => {
                    self.err(
                        &path.replace(".password", &format!(".{env_key}")),
                        format!("names environment variable {var}, which is not set"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }
}

pub(super) fn validate(
    raw: RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        errors: Vec::new(),
        env,
    };

    let admin = AdminConfig {
        socket: raw.admin.socket.map(PathBuf::from),
    };
    let metrics = MetricsConfig {
        statsd: raw.metrics.statsd,
        prefix: raw.metrics.prefix.unwrap_or_else(|| "tidepool".into()),
        flush_interval: c.duration(
            "metrics.flush_interval",
            &raw.metrics.flush_interval,
            Duration::from_secs(1),
        ),
    };
    if let Some(addr) = &metrics.statsd
        && !addr.contains(':')
    {
        c.err(
            "metrics.statsd",
            format!("must be host:port (got {addr:?})"),
        );
    }
    let format = match raw.log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.err(
                "log.format",
                format!("must be \"text\" or \"json\" (got {other:?})"),
            );
            LogFormat::Text
        }
    };
    let log = LogConfig {
        level: raw.log.level.unwrap_or_else(|| "info".into()),
        format,
    };
    let drain = DrainConfig {
        timeout: c.duration("drain.timeout", &raw.drain.timeout, Duration::from_secs(30)),
        interrupt_timeout: c.duration(
            "drain.interrupt_timeout",
            &raw.drain.interrupt_timeout,
            Duration::from_secs(2),
        ),
    };

    let mut pools = Vec::new();
    let mut names = HashSet::new();
    let mut listens = HashSet::new();
    for (i, rp) in raw.pool.into_iter().enumerate() {
        let path = format!("pool[{i}]");
        if let Some(p) = pool(&mut c, &path, rp) {
            if !names.insert(p.name.clone()) {
                c.err(
                    &format!("{path}.name"),
                    format!("{:?} is used by another pool", p.name),
                );
            }
            let is_ephemeral = matches!(p.listen, ListenAddr::Tcp(a) if a.port() == 0);
            if !is_ephemeral && !listens.insert(p.listen.to_string()) {
                c.err(
                    &format!("{path}.listen"),
                    format!("{} is used by another pool", p.listen),
                );
            }
            pools.push(p);
        }
    }
    if pools.is_empty() && c.errors.is_empty() {
        c.err("pool", "must define at least one [[pool]]");
    }

    if c.errors.is_empty() {
        Ok(Config {
            admin,
            metrics,
            log,
            drain,
            pools,
        })
    } else {
        Err(ConfigError::Invalid(c.errors))
    }
}

fn pool(c: &mut Checker, path: &str, rp: RawPool) -> Option<PoolConfig> {
    let key = |k: &str| format!("{path}.{k}");
    let name = rp.name.clone().unwrap_or_else(|| {
        c.err(&key("name"), "is required");
        String::new()
    });
    let protocol = match rp.protocol.as_deref() {
        Some("mysql") => Protocol::Mysql,
        Some("redis") => Protocol::Redis,
        Some(other) => {
            c.err(
                &key("protocol"),
                format!("must be \"mysql\" or \"redis\" (got {other:?})"),
            );
            return None;
        }
        None => {
            c.err(&key("protocol"), "is required (\"mysql\" or \"redis\")");
            return None;
        }
    };
    let listen = match rp.listen.as_deref() {
        Some(s) => listen_addr(s).unwrap_or_else(|e| {
            c.err(&key("listen"), e);
            ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))
        }),
        None => {
            c.err(
                &key("listen"),
                "is required (\"127.0.0.1:6380\" or \"unix:/path\")",
            );
            ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    };
    let upstream = match rp.upstream.clone() {
        Some(u) if host_port_ok(&u) => u,
        Some(u) => {
            c.err(&key("upstream"), format!("must be host:port (got {u:?})"));
            u
        }
        None => {
            c.err(&key("upstream"), "is required (host:port)");
            String::new()
        }
    };
    let mode = match rp.mode.as_deref() {
        None | Some("transaction") => PoolMode::Transaction,
        Some("session") => PoolMode::Session,
        Some(other) => {
            c.err(
                &key("mode"),
                format!("must be \"transaction\" or \"session\" (got {other:?})"),
            );
            PoolMode::Transaction
        }
    };
    if protocol == Protocol::Redis && mode == PoolMode::Session {
        c.err(&key("mode"), "\"session\" applies only to mysql pools");
    }
    let max_upstream = c.count(&key("max_upstream"), rp.max_upstream, 10, 1);
    let min_idle = c.count(&key("min_idle"), rp.min_idle, 0, 0);
    if min_idle > max_upstream {
        c.err(
            &key("min_idle"),
            format!("must be <= max_upstream ({max_upstream})"),
        );
    }
    let zero_is_never = |d: Duration| (!d.is_zero()).then_some(d);
    let acquire_timeout = c.duration(&key("acquire_timeout"), &rp.acquire_timeout, secs(5));
    let connect_timeout = c.duration(&key("connect_timeout"), &rp.connect_timeout, secs(3));
    for (k, d) in [
        ("acquire_timeout", acquire_timeout),
        ("connect_timeout", connect_timeout),
    ] {
        if d.is_zero() {
            c.err(&key(k), "must be > 0");
        }
    }
    let warn_utilization = rp.warn_utilization.unwrap_or(0.8);
    let critical_utilization = rp.critical_utilization.unwrap_or(0.95);
    for (k, v) in [
        ("warn_utilization", warn_utilization),
        ("critical_utilization", critical_utilization),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            c.err(&key(k), format!("must be in (0, 1] (got {v})"));
        }
    }
    if warn_utilization > critical_utilization {
        c.err(&key("warn_utilization"), "must be <= critical_utilization");
    }

    let mut cfg = PoolConfig {
        name,
        protocol,
        listen,
        upstream,
        mode,
        max_upstream,
        min_idle,
        max_clients: c.count(&key("max_clients"), rp.max_clients, 5000, 1),
        acquire_timeout,
        connect_timeout,
        upstream_idle_timeout: c.duration(
            &key("upstream_idle_timeout"),
            &rp.upstream_idle_timeout,
            secs(600),
        ),
        upstream_max_lifetime: c.duration(
            &key("upstream_max_lifetime"),
            &rp.upstream_max_lifetime,
            secs(3600),
        ),
        client_idle_timeout: zero_is_never(c.duration(
            &key("client_idle_timeout"),
            &rp.client_idle_timeout,
            Duration::ZERO,
        )),
        leak_threshold: c.duration(&key("leak_threshold"), &rp.leak_threshold, secs(30)),
        idle_in_transaction_timeout: zero_is_never(c.duration(
            &key("idle_in_transaction_timeout"),
            &rp.idle_in_transaction_timeout,
            secs(300),
        )),
        warn_utilization,
        critical_utilization,
        max_pipeline: c.count(&key("max_pipeline"), rp.max_pipeline, 1024, 1),
        max_command_bytes: c.count(
            &key("max_command_bytes"),
            rp.max_command_bytes,
            512 << 20,
            1024,
        ),
        users: Vec::new(),
        mysql: None,
        redis: None,
    };

    match protocol {
        Protocol::Mysql => {
            for (k, set) in [
                ("max_pinned", rp.max_pinned.is_some()),
                ("username", rp.username.is_some()),
                ("password", rp.password.is_some()),
                ("password_env", rp.password_env.is_some()),
                ("allow_commands", rp.allow_commands.is_some()),
            ] {
                if set {
                    c.err(
                        &key(k),
                        "applies only to redis pools (mysql pools use [[pool.users]])",
                    );
                }
            }
            let tls = match (&rp.tls_cert, &rp.tls_key) {
                (None, None) => None,
                (Some(cert), Some(key_file)) => {
                    let tls = TlsConfig {
                        cert: PathBuf::from(cert),
                        key: PathBuf::from(key_file),
                    };
                    // Loaded now so that `check` reports an unreadable or mismatched pair.
                    if let Err(e) = crate::tls::server_config(&tls) {
                        c.err(&key("tls_cert"), e);
                    }
                    Some(tls)
                }
                (Some(_), None) => {
                    c.err(&key("tls_key"), "is required with tls_cert");
                    None
                }
                (None, Some(_)) => {
                    c.err(&key("tls_cert"), "is required with tls_key");
                    None
                }
            };
            let handshake_timeout =
                c.duration(&key("handshake_timeout"), &rp.handshake_timeout, secs(10));
            if handshake_timeout.is_zero() {
                c.err(&key("handshake_timeout"), "must be > 0");
            }
            cfg.mysql = Some(MysqlPoolConfig {
                handshake_timeout,
                max_prepared_statements: c.count(
                    &key("max_prepared_statements"),
                    rp.max_prepared_statements,
                    64,
                    1,
                ),
                tls,
            });
            let users = rp.users.unwrap_or_default();
            if users.is_empty() {
                c.err(
                    &key("users"),
                    "must list at least one [[pool.users]] for a mysql pool",
                );
            }
            for (j, u) in users.into_iter().enumerate() {
                if let Some(u) = user(c, &format!("{path}.users[{j}]"), u) {
                    cfg.users.push(u);
                }
            }
        }
        Protocol::Redis => {
            for (k, set) in [
                ("tls_cert", rp.tls_cert.is_some()),
                ("tls_key", rp.tls_key.is_some()),
                ("handshake_timeout", rp.handshake_timeout.is_some()),
                (
                    "max_prepared_statements",
                    rp.max_prepared_statements.is_some(),
                ),
            ] {
                if set {
                    c.err(&key(k), "applies only to mysql pools");
                }
            }
            if rp.min_idle.is_some() {
                c.err(
                    &key("min_idle"),
                    "applies only to mysql pools (Redis lanes open on demand and stay open while used)",
                );
            }
            if rp.users.is_some() {
                c.err(
                    &key("users"),
                    "applies only to mysql pools (redis pools use password/password_env)",
                );
            }
            let password = c.secret(
                &key("password"),
                &rp.password,
                "password_env",
                &rp.password_env,
            );
            let mut allow_commands = Vec::new();
            for (j, cmd) in rp
                .allow_commands
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let norm = cmd
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_ascii_uppercase();
                if ALLOWABLE_REDIS_COMMANDS.contains(&norm.as_str()) {
                    allow_commands.push(norm);
                } else {
                    c.err(
                        &format!("{path}.allow_commands[{j}]"),
                        format!(
                            "{cmd:?} cannot be allowed (allowable: {})",
                            ALLOWABLE_REDIS_COMMANDS.join(", ")
                        ),
                    );
                }
            }
            cfg.redis = Some(RedisPoolConfig {
                max_pinned: c.count(&key("max_pinned"), rp.max_pinned, 16, 1),
                username: rp.username,
                password,
                allow_commands,
            });
        }
    }
    Some(cfg)
}

fn user(c: &mut Checker, path: &str, u: RawUser) -> Option<UserConfig> {
    let name = match u.user {
        Some(n) if !n.is_empty() => n,
        _ => {
            c.err(&format!("{path}.user"), "is required");
            return None;
        }
    };
    let password = c.secret(
        &format!("{path}.password"),
        &u.password,
        "password_env",
        &u.password_env,
    );
    let upstream_password = c.secret(
        &format!("{path}.upstream_password"),
        &u.upstream_password,
        "upstream_password_env",
        &u.upstream_password_env,
    );
    let Some(password) = password else {
        if u.password.is_none() && u.password_env.is_none() {
            c.err(
                &format!("{path}.password"),
                "is required (password or password_env)",
            );
        }
        return None;
    };
    Some(UserConfig {
        upstream_user: u.upstream_user.unwrap_or_else(|| name.clone()),
        upstream_password: upstream_password.unwrap_or_else(|| password.clone()),
        user: name,
        password,
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn listen_addr(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("has an empty unix socket path".into());
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    s.parse::<SocketAddr>()
        .map(ListenAddr::Tcp)
        .map_err(|_| format!("must be ip:port or unix:/path (got {s:?})"))
}

fn host_port_ok(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}
