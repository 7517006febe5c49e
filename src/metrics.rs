//! statsd metrics. Every metric name is a constant here; the pool (and the error kind, the pin
//! reason) travel as tags. Every `flush_interval` the control thread reads the registry and
//! sends: gauges `set` to current values (the exporter drops gauge increments), counters as the
//! increase since the last flush (kept by the registry, not by the exporter), latencies as the
//! average and p99 of the interval. Each metric is its own datagram, sent at once (the
//! exporter's default buffered sink holds a lone metric indefinitely).

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use metrics::{counter, gauge};
use metrics_exporter_statsd::{StatsdBuilder, StatsdRecorder};
use tokio_util::sync::CancellationToken;

use crate::config::MetricsConfig;
use crate::registry::{Registry, SessionState, Snapshot};

pub const CLIENTS_CONNECTED: &str = "clients.connected";
pub const CLIENTS_ACTIVE: &str = "clients.active";
pub const CLIENTS_WAITING: &str = "clients.waiting";
pub const CLIENTS_ACCEPTED: &str = "clients.accepted";
/// Tagged `reason` (e.g. `multi`, `watch`, `subscription`).
pub const SESSIONS_PINNED: &str = "sessions.pinned";
pub const SESSIONS_IN_TRANSACTION: &str = "sessions.in_transaction";
pub const SESSIONS_LEAKED: &str = "sessions.leaked";
/// New leaks (counter).
pub const LEAKS: &str = "leaks";
pub const UPSTREAMS_OPEN: &str = "upstreams.open";
pub const UPSTREAMS_IDLE: &str = "upstreams.idle";
pub const UPSTREAMS_IN_USE: &str = "upstreams.in_use";
pub const UPSTREAMS_MAX: &str = "upstreams.max";
pub const UPSTREAMS_DEDICATED_IN_USE: &str = "upstreams.dedicated_in_use";
/// 0 normal, 1 warn, 2 critical.
pub const UPSTREAM_UTILIZATION_LEVEL: &str = "upstream.utilization_level";
pub const UPSTREAM_UP: &str = "upstream.up";
pub const UPSTREAM_SERVER_CONNECTED: &str = "upstream.server_connected";
pub const UPSTREAM_SERVER_MAX: &str = "upstream.server_max";
pub const POOL_PAUSED: &str = "pool.paused";
pub const COMMANDS: &str = "commands";
/// Tagged `kind` (see `ErrorKind`).
pub const ERRORS: &str = "errors";
pub const COMMAND_LATENCY_AVG_US: &str = "command.latency_avg_us";
pub const COMMAND_LATENCY_P99_US: &str = "command.latency_p99_us";
pub const ACQUIRES: &str = "acquire.count";
pub const ACQUIRE_WAIT_AVG_US: &str = "acquire.wait_avg_us";
pub const ACQUIRE_WAIT_P99_US: &str = "acquire.wait_p99_us";
pub const RELOADS: &str = "reloads";
pub const RELOAD_FAILURES: &str = "reload_failures";

/// Sends the registry's numbers to statsd every `flush_interval`.
pub struct Exporter {
    recorder: StatsdRecorder,
    interval: std::time::Duration,
    /// Totals at the last flush, to send counters as increases.
    last: HashMap<String, Totals>,
    last_reloads: (u64, u64),
}

#[derive(Default, Clone)]
struct Totals {
    counters: HashMap<String, u64>,
    latency: Snapshot,
    acquire: Snapshot,
}

impl Exporter {
    /// `None` when `[metrics] statsd` is not set.
    pub fn new(cfg: &MetricsConfig) -> Result<Option<Exporter>, String> {
        let Some(addr) = &cfg.statsd else {
            return Ok(None);
        };
        let bad = |e: &dyn std::fmt::Display| format!("metrics.statsd {addr:?}: {e}");
        let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| bad(&e))?;
        socket.set_nonblocking(true).map_err(|e| bad(&e))?;
        let sink = cadence::UdpMetricSink::from(addr.as_str(), socket).map_err(|e| bad(&e))?;
        let recorder = StatsdBuilder::from("", 0)
            .with_sink(sink)
            .build(Some(&cfg.prefix))
            .map_err(|e| bad(&e))?;
        Ok(Some(Exporter {
            recorder,
            interval: cfg.flush_interval,
            last: HashMap::new(),
            last_reloads: (0, 0),
        }))
    }

    pub async fn run(mut self, registry: Arc<Registry>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(&registry),
                _ = stop.cancelled() => return,
            }
        }
    }

    pub fn flush(&mut self, registry: &Registry) {
        let recorder = &self.recorder;
        let last = &mut self.last;
        let last_reloads = &mut self.last_reloads;
        metrics::with_local_recorder(recorder, || {
            let sessions = registry.sessions();
            for pool in registry.pools() {
                let row = registry.pool_row(&pool, &sessions);
                let p = pool.name.clone();
                let g = |name: &'static str, v: f64| gauge!(name, "pool" => p.clone()).set(v);
                g(CLIENTS_CONNECTED, row.clients as f64);
                g(CLIENTS_ACTIVE, row.active as f64);
                g(CLIENTS_WAITING, row.waiting as f64);
                g(SESSIONS_IN_TRANSACTION, row.in_transaction as f64);
                g(SESSIONS_LEAKED, row.leaked as f64);
                g(UPSTREAMS_OPEN, row.upstreams.open as f64);
                g(UPSTREAMS_IDLE, row.upstreams.idle as f64);
                g(UPSTREAMS_IN_USE, row.upstreams.in_use as f64);
                g(UPSTREAMS_MAX, row.upstreams.max as f64);
                g(
                    UPSTREAMS_DEDICATED_IN_USE,
                    row.upstreams.dedicated_in_use as f64,
                );
                g(UPSTREAM_UTILIZATION_LEVEL, row.alert as u8 as f64);
                g(UPSTREAM_UP, f64::from(u8::from(row.health == "up")));
                g(POOL_PAUSED, f64::from(u8::from(row.paused)));
                if let Some((_, Ok(load))) = pool.server_load() {
                    g(UPSTREAM_SERVER_CONNECTED, load.connected as f64);
                    if let Some(max) = load.max {
                        g(UPSTREAM_SERVER_MAX, max as f64);
                    }
                }
                pinned_by_reason(registry, &sessions, &pool);
                let prev = last.entry(p.clone()).or_default();
                send_counters(registry, &pool, prev);
            }
            let now = (
                registry.reloads.load(Relaxed),
                registry.reload_failures.load(Relaxed),
            );
            counter!(RELOADS).increment(now.0 - last_reloads.0);
            counter!(RELOAD_FAILURES).increment(now.1 - last_reloads.1);
            *last_reloads = now;
        });
    }
}

/// One gauge per pin reason in use — and a zero for a reason that just went away, so the last
/// value sent is never stale.
fn pinned_by_reason(
    registry: &Registry,
    sessions: &[Arc<crate::registry::SessionInfo>],
    pool: &Arc<crate::registry::PoolEntry>,
) {
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    for s in sessions.iter().filter(|s| Arc::ptr_eq(&s.pool, pool)) {
        if matches!(
            s.state(),
            SessionState::Pinned | SessionState::InTransaction
        ) || s.upstream_since().is_some()
        {
            let reason = registry.client_row(s).pin_reason.unwrap_or_default();
            *by_reason.entry(reason).or_default() += 1;
        }
    }
    for (reason, n) in by_reason {
        gauge!(SESSIONS_PINNED, "pool" => pool.name.clone(), "reason" => reason).set(n as f64);
    }
}

fn send_counters(registry: &Registry, pool: &crate::registry::PoolEntry, prev: &mut Totals) {
    let stats = registry
        .stats_rows()
        .into_iter()
        .find(|r| r.pool == pool.name);
    let Some(stats) = stats else { return };
    let p = pool.name.clone();
    let mut bump = |name: &'static str, total: u64, tags: Vec<(&'static str, String)>| {
        let key = format!("{name}{tags:?}");
        let before = prev.counters.insert(key, total).unwrap_or(0);
        let mut labels = vec![metrics::Label::new("pool", p.clone())];
        labels.extend(tags.into_iter().map(|(k, v)| metrics::Label::new(k, v)));
        counter!(name, labels).increment(total.saturating_sub(before));
    };
    bump(COMMANDS, stats.commands, vec![]);
    bump(CLIENTS_ACCEPTED, stats.clients_accepted, vec![]);
    bump(LEAKS, stats.leaks, vec![]);
    for (kind, n) in pool.stats.errors() {
        bump(ERRORS, n, vec![("kind", kind.as_str().to_string())]);
    }
    let (lat, snap) = pool.stats.latency.since(&prev.latency);
    prev.latency = snap;
    let (acq, snap) = pool.stats.acquire_wait.since(&prev.acquire);
    prev.acquire = snap;
    let g = |name: &'static str, v: u64| gauge!(name, "pool" => p.clone()).set(v as f64);
    if lat.count > 0 {
        g(COMMAND_LATENCY_AVG_US, lat.avg_us);
        g(COMMAND_LATENCY_P99_US, lat.p99_us);
    }
    counter!(ACQUIRES, "pool" => p.clone()).increment(acq.count);
    if acq.count > 0 {
        g(ACQUIRE_WAIT_AVG_US, acq.avg_us);
        g(ACQUIRE_WAIT_P99_US, acq.p99_us);
    }
}
