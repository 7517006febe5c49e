//! The sweeper: one task that polices idle sessions and watches pools.
//!
//! - A session that holds an upstream connection in a *leakable* state (a transaction, a Redis
//!   MULTI or WATCH, a MySQL pin) while its client is idle for `leak_threshold` is **leaked**:
//!   one warning with the attribution, counted, listed by `show leaks`. Once idle for
//!   `idle_in_transaction_timeout` it is closed (its engine answers the client with the reason
//!   and discards the upstream's state). Subscriptions and blocking commands are idle by design
//!   and never leaked.
//! - A session holding nothing and idle for `client_idle_timeout` is closed.
//! - Each pool's utilization (in-use upstreams over their bound) raises one log line when it
//!   crosses `warn_utilization` / `critical_utilization` and one when it falls back below the
//!   threshold minus a hysteresis band, never one per command.
//! - Every `SAMPLE_INTERVAL` the upstream server's own connection count and limit are sampled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{CloseReason, ErrorKind, Level, PoolEntry, Registry, SessionInfo};

/// How often sessions are looked at: the precision of every idle timeout.
pub const TICK: Duration = Duration::from_millis(200);
/// How often the upstream servers are asked for their connection counts.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// A utilization alert clears only once utilization is this far below its threshold.
pub const HYSTERESIS: f64 = 0.05;

pub async fn run(registry: Arc<Registry>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sample: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        sweep_sessions(&registry);
        for pool in registry.pools() {
            check_utilization(&pool);
        }
        if last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_INTERVAL) {
            last_sample = Some(tokio::time::Instant::now());
            for pool in registry.pools() {
                tokio::spawn(sample(pool));
            }
        }
    }
}

pub fn sweep_sessions(registry: &Registry) {
    let now = registry.clock().now_ms();
    for s in registry.sessions() {
        let idle = s.idle_ms(now);
        if idle == 0 {
            continue;
        }
        let cfg = s.pool.cfg();
        let idle_d = Duration::from_millis(idle);
        if s.is_leakable() {
            if idle_d >= cfg.leak_threshold && !s.leaked.swap(true, Ordering::Relaxed) {
                s.pool.stats.leaks.fetch_add(1, Ordering::Relaxed);
                report_leak(registry, &s, idle_d);
            }
            if let Some(t) = cfg.idle_in_transaction_timeout
                && idle_d >= t
            {
                let reason = registry.client_row(&s).pin_reason.unwrap_or_default();
                close(
                    &s,
                    format!(
                        "idle in {reason} for {} (idle_in_transaction_timeout)",
                        humantime::format_duration(t)
                    ),
                    ErrorKind::IdleInTransaction,
                );
            }
        } else if s.upstream_since().is_none()
            && let Some(t) = cfg.client_idle_timeout
            && idle_d >= t
        {
            close(
                &s,
                format!(
                    "idle for {} (client_idle_timeout)",
                    humantime::format_duration(t)
                ),
                ErrorKind::IdleTimeout,
            );
        }
    }
}

fn report_leak(registry: &Registry, s: &SessionInfo, idle: Duration) {
    let row = registry.client_row(s);
    tracing::warn!(
        pool = %row.pool,
        client = row.id,
        addr = %row.addr,
        pid = ?row.pid,
        cmdline = row.cmdline.as_deref().unwrap_or("?"),
        held_for = %humantime::format_duration(Duration::from_millis(row.upstream_held_ms.unwrap_or(0))),
        idle_for = %humantime::format_duration(Duration::from_millis(idle.as_millis() as u64)),
        pin_reason = row.pin_reason.as_deref().unwrap_or(""),
        last_statement = %row.last_statement,
        "leaked session: holds an upstream connection while its client is idle"
    );
}

fn close(s: &SessionInfo, message: String, kind: ErrorKind) {
    let first = s.close(CloseReason {
        message: message.clone(),
        kind,
    });
    if first {
        s.pool.stats.error(kind);
        tracing::warn!(pool = %s.pool.name, client = s.id, addr = %s.addr, reason = %message, "closing client");
    }
}

/// Raises or clears the pool's utilization alert; returns the new level when it changed.
pub fn check_utilization(pool: &PoolEntry) -> Option<Level> {
    let counts = pool.upstream()?.counts();
    let cfg = pool.cfg();
    let u = counts.utilization();
    let old = pool.level();
    let new = next_level(old, u, cfg.warn_utilization, cfg.critical_utilization);
    if new == old {
        return None;
    }
    pool.level.store(new as u8, Ordering::Relaxed);
    let pct = (u * 100.0).round();
    match new {
        Level::Critical => {
            tracing::error!(pool = %pool.name, utilization_pct = pct, in_use = counts.in_use, max_upstream = counts.max, dedicated_in_use = counts.dedicated_in_use, dedicated_max = counts.dedicated_max, "upstream utilization critical (critical_utilization)")
        }
        Level::Warn if old < Level::Warn => {
            tracing::warn!(pool = %pool.name, utilization_pct = pct, in_use = counts.in_use, max_upstream = counts.max, dedicated_in_use = counts.dedicated_in_use, dedicated_max = counts.dedicated_max, "upstream utilization high (warn_utilization)")
        }
        _ => {
            tracing::info!(pool = %pool.name, utilization_pct = pct, level = ?new, "upstream utilization back down")
        }
    }
    Some(new)
}

/// The alert level for utilization `u`: rises at a threshold, falls only below it minus
/// `HYSTERESIS`.
pub fn next_level(old: Level, u: f64, warn: f64, critical: f64) -> Level {
    let rise = if u >= critical {
        Level::Critical
    } else if u >= warn {
        Level::Warn
    } else {
        Level::Normal
    };
    if rise >= old {
        return rise;
    }
    let fall = if u >= critical - HYSTERESIS {
        Level::Critical
    } else if u >= warn - HYSTERESIS {
        Level::Warn
    } else {
        Level::Normal
    };
    fall.min(old)
}

async fn sample(pool: Arc<PoolEntry>) {
    let Some(view) = pool.upstream() else {
        return;
    };
    let limit = pool.cfg().connect_timeout + Duration::from_secs(2);
    let result = match tokio::time::timeout(limit, view.sample_server()).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(limit)
        )),
    };
    *pool.server.lock().unwrap_or_else(|e| e.into_inner()) = Some((SystemTime::now(), result));
}
