//! A pool as the control plane sees it: its live configuration (swapped on reload), counters,
//! the engine's view of its upstream connections, the `pause` gate, and the last sample of the
//! upstream server's own connection count.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::session::{SessionHandle, SessionState};
use super::stats::PoolStats;
use crate::config::PoolConfig;

/// Upstream connections of one pool, as counted by its engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamCounts {
    pub open: usize,
    pub idle: usize,
    pub in_use: usize,
    /// `max_upstream`.
    pub max: usize,
    /// Redis: dedicated connections open, in use, and `max_pinned` (0 for engines without them).
    pub dedicated_open: usize,
    pub dedicated_in_use: usize,
    pub dedicated_max: usize,
}

impl UpstreamCounts {
    /// The fuller of the two bounds, 0.0–1.0: what utilization alerts watch.
    pub fn utilization(&self) -> f64 {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        ratio(self.in_use, self.max).max(ratio(self.dedicated_in_use, self.dedicated_max))
    }
}

/// The upstream server's own view of its connections (Redis `connected_clients`/`maxclients`,
/// MySQL `Threads_connected`/`max_connections`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerLoad {
    pub connected: u64,
    /// `None` when the server would not say (e.g. `CONFIG` is not permitted).
    pub max: Option<u64>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an engine tells the control plane about its upstream side.
pub trait UpstreamView: Send + Sync {
    fn counts(&self) -> UpstreamCounts;
    /// While the upstream is down: since when and the last error.
    fn down_since(&self) -> Option<(Instant, String)>;
    /// Asks the upstream server how many connections it has and allows. Runs on the control
    /// plane's runtime: open what it needs there, not on the proxy's.
    fn sample_server(&self) -> BoxFuture<'_, Result<ServerLoad, String>>;
}

/// Utilization alert level, with hysteresis (see `sweeper`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Level {
    Normal = 0,
    Warn = 1,
    Critical = 2,
}

impl Level {
    pub fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Warn,
            2 => Level::Critical,
            _ => Level::Normal,
        }
    }
}

pub struct PoolEntry {
    pub name: String,
    cfg: Mutex<Arc<PoolConfig>>,
    upstream: Mutex<Option<Arc<dyn UpstreamView>>>,
    pub stats: PoolStats,
    paused: watch::Sender<bool>,
    pub(super) level: AtomicU8,
    pub(super) server: Mutex<Option<(SystemTime, Result<ServerLoad, String>)>>,
}

impl PoolEntry {
    pub(super) fn new(cfg: Arc<PoolConfig>) -> PoolEntry {
        PoolEntry {
            name: cfg.name.clone(),
            cfg: Mutex::new(cfg),
            upstream: Mutex::new(None),
            stats: PoolStats::default(),
            paused: watch::Sender::new(false),
            level: AtomicU8::new(Level::Normal as u8),
            server: Mutex::new(None),
        }
    }

    /// The pool's current configuration (reloads replace it).
    pub fn cfg(&self) -> Arc<PoolConfig> {
        self.cfg.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_cfg(&self, cfg: Arc<PoolConfig>) {
        *self.cfg.lock().unwrap_or_else(|e| e.into_inner()) = cfg;
    }

    /// Engines call this once their upstream side exists (and again after a rebuild).
    pub fn set_upstream(&self, view: Arc<dyn UpstreamView>) {
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(view);
    }

    pub fn upstream(&self) -> Option<Arc<dyn UpstreamView>> {
        self.upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Relaxed))
    }

    pub fn server_load(&self) -> Option<(SystemTime, Result<ServerLoad, String>)> {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    pub fn set_paused(&self, paused: bool) -> bool {
        self.paused.send_replace(paused) != paused
    }

    /// Engines call this before starting new work that needs an upstream (not for a session
    /// already holding one, so open transactions can finish). While the pool is paused the
    /// session waits — as `waiting` — until `resume`, its `acquire_timeout`, or a `kill`.
    pub async fn admit(&self, session: &SessionHandle) -> Result<(), String> {
        if !self.is_paused() {
            return Ok(());
        }
        let timeout = self.cfg().acquire_timeout;
        let started = Instant::now();
        session.set_state(SessionState::Waiting);
        let mut rx = self.paused.subscribe();
        let resumed = tokio::select! {
            r = tokio::time::timeout(timeout, rx.wait_for(|p| !*p)) => r.is_ok(),
            _ = session.closed() => false,
        };
        self.stats.acquire_wait.record(started.elapsed());
        if resumed {
            Ok(())
        } else {
            session.error(super::ErrorKind::AcquireTimeout);
            Err(format!(
                "pool '{}' is paused by the operator; waited {} (acquire_timeout)",
                self.name,
                humantime::format_duration(Duration::from_millis(
                    started.elapsed().as_millis() as u64
                ))
            ))
        }
    }
}
