//! What a reload changes: per pool, the keys that apply live (read per decision from the pool's
//! live config) and the keys that need the pool rebuilt. A reload with a change that cannot
//! apply live is refused, naming the keys, and the old configuration keeps running.

use super::{Config, PoolConfig};

/// Keys that a running pool of either protocol picks up without dropping clients or
/// connections.
pub const LIVE_POOL_KEYS: &[&str] = &[
    "max_upstream",
    "max_clients",
    "client_idle_timeout",
    "leak_threshold",
    "idle_in_transaction_timeout",
    "warn_utilization",
    "critical_utilization",
];

/// Further keys a MySQL pool reads live: new sessions authenticate against the new users
/// (password rotation), new upstream connections use the new timeouts.
pub const LIVE_MYSQL_KEYS: &[&str] = &[
    "users",
    "acquire_timeout",
    "connect_timeout",
    "upstream_idle_timeout",
    "upstream_max_lifetime",
    "max_command_bytes",
    "min_idle",
    "max_prepared_statements",
    "handshake_timeout",
];

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// (pool, changed live keys) for pools that change only live keys.
    pub live: Vec<(String, Vec<&'static str>)>,
    /// What this build cannot change without a restart ("pool[sessions].listen", "admin.socket").
    pub needs_restart: Vec<String>,
    /// Pools to start (a new listener and pool) and to stop accepting on (their connected
    /// clients carry on until they leave).
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
            && self.needs_restart.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
    }
}

pub fn diff(old: &Config, new: &Config) -> Diff {
    let mut d = Diff::default();
    for (key, changed) in [
        ("admin", old.admin != new.admin),
        ("metrics", old.metrics != new.metrics),
        ("log", old.log != new.log),
        ("drain", old.drain != new.drain),
    ] {
        if changed {
            d.needs_restart.push(key.to_string());
        }
    }
    for p in &old.pools {
        if new.pool(&p.name).is_none() {
            d.removed.push(p.name.clone());
        }
    }
    for n in &new.pools {
        let Some(o) = old.pool(&n.name) else {
            d.added.push(n.name.clone());
            continue;
        };
        let (live, other) = changed_keys(o, n);
        d.needs_restart
            .extend(other.into_iter().map(|k| format!("pool[{}].{k}", n.name)));
        if !live.is_empty() {
            d.live.push((n.name.clone(), live));
        }
    }
    d
}

/// The keys that differ, split into live ones and the rest.
fn changed_keys(o: &PoolConfig, n: &PoolConfig) -> (Vec<&'static str>, Vec<String>) {
    let (ov, nv) = match (toml::Value::try_from(o), toml::Value::try_from(n)) {
        (Ok(toml::Value::Table(a)), Ok(toml::Value::Table(b))) => (a, b),
        _ => return (Vec::new(), vec!["(unreadable)".into()]),
    };
    let mut keys: Vec<&String> = ov.keys().chain(nv.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut live = Vec::new();
    let mut other = Vec::new();
    for k in keys {
        if ov.get(k) == nv.get(k) {
            continue;
        }
        let mysql_only = match n.protocol {
            super::Protocol::Mysql => LIVE_MYSQL_KEYS,
            super::Protocol::Redis => &[],
        };
        match LIVE_POOL_KEYS
            .iter()
            .chain(mysql_only)
            .find(|l| **l == k.as_str())
        {
            Some(l) => live.push(*l),
            None => other.push(k.clone()),
        }
    }
    // Secrets serialize redacted: compare them directly. A MySQL pool takes new users (a
    // rotated password) live.
    let users_listed = live.contains(&"users") || other.iter().any(|k| k == "users");
    if o.users != n.users && !users_listed {
        match n.protocol {
            super::Protocol::Mysql => live.push("users"),
            super::Protocol::Redis => other.push("users".into()),
        }
    }
    if o.redis != n.redis && !other.iter().any(|k| k == "password") {
        let same_but_secret =
            o.redis.as_ref().map(|r| &r.password) != n.redis.as_ref().map(|r| &r.password);
        if same_but_secret {
            other.push("password".into());
        }
    }
    (live, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_toml(&format!(
            "[[pool]]\nname = \"r\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:6380\"\nupstream = \"127.0.0.1:6379\"\n{extra}\n"
        ))
        .unwrap()
    }

    #[test]
    fn pools_added_and_removed_are_listed_not_refused() {
        let other = "[[pool]]\nname = \"s\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:6390\"\nupstream = \"127.0.0.1:6379\"\n";
        let both = Config::from_toml(&format!(
            "{other}[[pool]]\nname = \"r\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:6380\"\nupstream = \"127.0.0.1:6379\"\n"
        ))
        .unwrap();
        let d = diff(&cfg(""), &both);
        assert_eq!(
            (d.added.clone(), d.removed.clone()),
            (vec!["s".to_string()], vec![])
        );
        assert!(d.needs_restart.is_empty());
        let d = diff(&both, &cfg(""));
        assert_eq!(d.removed, vec!["s".to_string()]);
    }

    #[test]
    fn an_identical_file_changes_nothing() {
        assert!(diff(&cfg("max_upstream = 4"), &cfg("max_upstream = 4")).is_empty());
    }

    #[test]
    fn sizes_and_timeouts_apply_live() {
        let d = diff(
            &cfg("max_upstream = 4"),
            &cfg("max_upstream = 8\nleak_threshold = \"5s\""),
        );
        assert_eq!(
            d.live,
            vec![("r".into(), vec!["leak_threshold", "max_upstream"])]
        );
        assert!(d.needs_restart.is_empty());
    }

    fn mysql(password: &str, extra: &str) -> Config {
        Config::from_toml(&format!(
            "[[pool]]\nname = \"m\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:3307\"\nupstream = \"127.0.0.1:3306\"\n{extra}\n  [[pool.users]]\n  user = \"app\"\n  password = \"{password}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_mysql_pool_takes_rotated_passwords_and_new_timeouts_live() {
        let d = diff(&mysql("old", ""), &mysql("new", "acquire_timeout = \"9s\""));
        assert_eq!(d.live, vec![("m".into(), vec!["acquire_timeout", "users"])]);
        assert!(d.needs_restart.is_empty(), "{:?}", d.needs_restart);
        let d = diff(&mysql("a", ""), &mysql("a", "mode = \"session\""));
        assert_eq!(d.needs_restart, vec!["pool[m].mode"]);
    }

    #[test]
    fn identity_changes_and_secrets_are_named() {
        let d = diff(
            &cfg("password = \"a\""),
            &cfg("password = \"b\"\nmax_pinned = 3"),
        );
        assert_eq!(
            d.needs_restart,
            vec!["pool[r].max_pinned", "pool[r].password"]
        );
        let moved = cfg("").to_redacted_toml().replace("6380", "6381");
        let d = diff(&cfg(""), &Config::from_toml(&moved).unwrap());
        assert_eq!(d.needs_restart, vec!["pool[r].listen"]);
    }
}
