//! Snapshots of the registry as rows: what `show clients|leaks|pools|upstreams|stats` print and
//! what the admin client deserializes. Built on demand; nothing here runs on the data path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::session::Statement;
use super::{Level, PoolEntry, Registry, SessionInfo, SessionState, Summary, UpstreamCounts};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientRow {
    pub id: u64,
    pub pool: String,
    pub protocol: String,
    pub addr: String,
    pub pid: Option<u32>,
    pub cmdline: Option<String>,
    pub user: String,
    pub db: String,
    pub state: SessionState,
    pub pin_reason: Option<String>,
    pub pinned_ms: Option<u64>,
    /// How long the session has held an upstream connection of its own.
    pub upstream_held_ms: Option<u64>,
    pub idle_ms: u64,
    pub leaked: bool,
    pub last_statement: String,
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Unix seconds.
    pub connected_at: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolRow {
    pub name: String,
    pub protocol: String,
    pub listen: String,
    pub paused: bool,
    pub clients: usize,
    pub active: usize,
    pub waiting: usize,
    pub pinned: usize,
    pub in_transaction: usize,
    pub leaked: usize,
    pub upstreams: UpstreamCounts,
    pub longest_wait_ms: u64,
    pub health: String,
    pub last_error: Option<String>,
    pub utilization: f64,
    pub alert: Level,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamRow {
    pub pool: String,
    pub upstream: String,
    pub health: String,
    pub down_for_ms: Option<u64>,
    pub last_error: Option<String>,
    pub counts: UpstreamCounts,
    /// The upstream server's own connection count and limit, as last sampled.
    pub server_connected: Option<u64>,
    pub server_max: Option<u64>,
    pub sampled_ago_ms: Option<u64>,
    pub sample_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsRow {
    pub pool: String,
    pub since_s: u64,
    pub clients_accepted: u64,
    pub commands: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency: Summary,
    pub acquire_wait: Summary,
    pub leaks: u64,
    pub errors: BTreeMap<String, u64>,
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

impl Registry {
    pub fn client_row(&self, s: &SessionInfo) -> ClientRow {
        let now = self.clock.now_ms();
        let t = s.text();
        let last_statement = match &t.statement {
            Statement::None => String::new(),
            Statement::Command { name, args } => format!("{} ({args} args)", name.to_uppercase()),
            Statement::Sql(raw) => match self.sql_masker() {
                Some(mask) => mask(raw, super::MAX_STATEMENT),
                None => format!("<sql, {} bytes>", raw.len()),
            },
        };
        let (user, db) = (t.user.clone(), t.db.clone());
        let pin = t.pin.clone();
        drop(t);
        let process = s.process();
        ClientRow {
            id: s.id,
            pool: s.pool.name.clone(),
            protocol: s.protocol.to_string(),
            addr: s.addr.clone(),
            pid: process.map(|p| p.pid).or(s.peer_pid),
            cmdline: process.map(|p| p.cmdline.clone()),
            user,
            db,
            state: s.state(),
            pin_reason: pin.as_ref().map(|(r, _)| r.to_string()),
            pinned_ms: pin.map(|(_, since)| now.saturating_sub(since)),
            upstream_held_ms: s.upstream_since().map(|since| now.saturating_sub(since)),
            idle_ms: s.idle_ms(now),
            leaked: s.is_leaked(),
            last_statement,
            commands: s.commands.load(std::sync::atomic::Ordering::Relaxed),
            bytes_in: s.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
            bytes_out: s.bytes_out.load(std::sync::atomic::Ordering::Relaxed),
            connected_at: s
                .connected_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    pub fn client_rows(&self, only_leaked: bool) -> Vec<ClientRow> {
        self.sessions()
            .iter()
            .filter(|s| !only_leaked || s.is_leaked())
            .map(|s| self.client_row(s))
            .collect()
    }

    pub fn pool_row(&self, p: &Arc<PoolEntry>, sessions: &[Arc<SessionInfo>]) -> PoolRow {
        let now = self.clock.now_ms();
        let mine: Vec<_> = sessions
            .iter()
            .filter(|s| Arc::ptr_eq(&s.pool, p))
            .collect();
        let count = |st: SessionState| mine.iter().filter(|s| s.state() == st).count();
        let longest_wait_ms = mine
            .iter()
            .filter(|s| s.state() == SessionState::Waiting)
            .map(|s| now.saturating_sub(s.last_activity_ms()))
            .max()
            .unwrap_or(0);
        let upstream = p.upstream();
        let counts = upstream.as_ref().map(|u| u.counts()).unwrap_or_default();
        let down = upstream.as_ref().and_then(|u| u.down_since());
        let cfg = p.cfg();
        PoolRow {
            name: p.name.clone(),
            protocol: cfg.protocol.to_string(),
            listen: cfg.listen.to_string(),
            paused: p.is_paused(),
            clients: mine.len(),
            active: count(SessionState::Active),
            waiting: count(SessionState::Waiting),
            pinned: count(SessionState::Pinned),
            in_transaction: count(SessionState::InTransaction),
            leaked: mine.iter().filter(|s| s.is_leaked()).count(),
            upstreams: counts,
            longest_wait_ms,
            health: if down.is_some() { "down" } else { "up" }.into(),
            last_error: down.map(|(_, e)| e),
            utilization: counts.utilization(),
            alert: p.level(),
        }
    }

    pub fn pool_rows(&self) -> Vec<PoolRow> {
        let sessions = self.sessions();
        self.pools()
            .iter()
            .map(|p| self.pool_row(p, &sessions))
            .collect()
    }

    pub fn upstream_rows(&self) -> Vec<UpstreamRow> {
        self.pools()
            .iter()
            .map(|p| {
                let upstream = p.upstream();
                let down = upstream.as_ref().and_then(|u| u.down_since());
                let sample = p.server_load();
                let (load, err) = match sample.as_ref().map(|(_, r)| r) {
                    Some(Ok(l)) => (Some(l.clone()), None),
                    Some(Err(e)) => (None, Some(e.clone())),
                    None => (None, None),
                };
                UpstreamRow {
                    pool: p.name.clone(),
                    upstream: p.cfg().upstream.clone(),
                    health: if down.is_some() { "down" } else { "up" }.into(),
                    down_for_ms: down.as_ref().map(|(since, _)| ms(since.elapsed())),
                    last_error: down.map(|(_, e)| e),
                    counts: upstream.map(|u| u.counts()).unwrap_or_default(),
                    server_connected: load.as_ref().map(|l| l.connected),
                    server_max: load.and_then(|l| l.max),
                    sampled_ago_ms: sample.and_then(|(at, _)| at.elapsed().ok()).map(ms),
                    sample_error: err,
                }
            })
            .collect()
    }

    pub fn stats_rows(&self) -> Vec<StatsRow> {
        use std::sync::atomic::Ordering::Relaxed;
        let since_s = self.started.elapsed().map_or(0, |d| d.as_secs());
        let sessions = self.sessions();
        self.pools()
            .iter()
            .map(|p| {
                let s = &p.stats;
                // Closed sessions' totals plus the live ones'.
                let live = |f: fn(&SessionInfo) -> u64| -> u64 {
                    sessions
                        .iter()
                        .filter(|x| Arc::ptr_eq(&x.pool, p))
                        .map(|x| f(x))
                        .sum()
                };
                StatsRow {
                    pool: p.name.clone(),
                    since_s,
                    clients_accepted: s.clients_accepted.load(Relaxed),
                    commands: s.commands.load(Relaxed) + live(|x| x.commands.load(Relaxed)),
                    bytes_in: s.bytes_in.load(Relaxed) + live(|x| x.bytes_in.load(Relaxed)),
                    bytes_out: s.bytes_out.load(Relaxed) + live(|x| x.bytes_out.load(Relaxed)),
                    latency: s.latency.summary(),
                    acquire_wait: s.acquire_wait.summary(),
                    leaks: s.leaks.load(Relaxed),
                    errors: s
                        .errors()
                        .into_iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(k, n)| (k.as_str().to_string(), n))
                        .collect(),
                }
            })
            .collect()
    }
}
