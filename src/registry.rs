//! The registry of live sessions shared by every pool: each session is registered by its
//! engine (an RAII `SessionHandle`), reports its state through cheap atomic calls, and is read
//! by the sweeper (idle/leak policing), the admin socket and the metrics. One `Arc<Registry>`
//! per proxy, passed explicitly.

mod pool;
mod process;
mod session;
mod stats;
pub mod sweeper;
#[cfg(test)]
mod tests;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub use pool::{BoxFuture, Level, PoolEntry, ServerLoad, UpstreamCounts, UpstreamView};
pub use process::ProcessInfo;
pub use session::{CloseReason, MAX_STATEMENT, SessionHandle, SessionInfo, SessionState};
pub use stats::{ErrorKind, Histogram, PoolStats, Snapshot, Summary};
pub use view::{ClientRow, PoolRow, StatsRow, UpstreamRow};

use crate::config::{PoolConfig, Protocol};
use crate::server::Peer;

/// Milliseconds since the registry started: timestamps that fit in an `AtomicU64`.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Renders a raw SQL prefix with its literals masked (the MySQL engine provides it).
pub type SqlMasker = fn(&[u8], usize) -> String;

pub struct Registry {
    clock: Clock,
    started: std::time::SystemTime,
    sessions: Mutex<HashMap<u64, Arc<SessionInfo>>>,
    pools: Mutex<Vec<Arc<PoolEntry>>>,
    sql_masker: OnceLock<SqlMasker>,
    pub reloads: std::sync::atomic::AtomicU64,
    pub reload_failures: std::sync::atomic::AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            clock: Clock(Instant::now()),
            started: std::time::SystemTime::now(),
            sessions: Mutex::new(HashMap::new()),
            pools: Mutex::new(Vec::new()),
            sql_masker: OnceLock::new(),
            reloads: Default::default(),
            reload_failures: Default::default(),
        }
    }
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn started(&self) -> std::time::SystemTime {
        self.started
    }

    /// The pool's entry, created on first use; a later call with a changed config updates it
    /// (so counters survive reloads).
    pub fn pool(&self, cfg: &PoolConfig) -> Arc<PoolEntry> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.iter().find(|p| p.name == cfg.name) {
            p.set_cfg(Arc::new(cfg.clone()));
            return p.clone();
        }
        let p = Arc::new(PoolEntry::new(Arc::new(cfg.clone())));
        pools.push(p.clone());
        p
    }

    /// Forgets a pool removed from the configuration (its remaining sessions keep their entry).
    pub fn remove_pool(&self, name: &str) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|p| p.name != name);
    }

    pub fn pools(&self) -> Vec<Arc<PoolEntry>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn find_pool(&self, name: &str) -> Option<Arc<PoolEntry>> {
        self.pools().into_iter().find(|p| p.name == name)
    }

    /// Registers a client session; the handle removes it when dropped.
    pub fn register(
        self: &Arc<Self>,
        pool: &Arc<PoolEntry>,
        protocol: Protocol,
        peer: &Peer,
        user: &str,
    ) -> SessionHandle {
        let info = Arc::new(SessionInfo::new(
            peer.id,
            pool.clone(),
            protocol,
            peer.addr.clone(),
            peer.pid,
            self.clock,
        ));
        pool.stats
            .clients_accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer.id, info.clone());
        let handle = SessionHandle::new(info, self.clone());
        handle.set_user(user);
        handle
    }

    /// Removes a session; its counters move into its pool's totals (kept per session while it
    /// lives so that the data path never writes a cache line shared with other sessions).
    fn unregister(&self, id: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(s) = removed {
            let st = &s.pool.stats;
            st.commands.fetch_add(s.commands.load(Relaxed), Relaxed);
            st.bytes_in.fetch_add(s.bytes_in.load(Relaxed), Relaxed);
            st.bytes_out.fetch_add(s.bytes_out.load(Relaxed), Relaxed);
        }
    }

    /// Every live session (a copy of the list; the sessions themselves stay live).
    pub fn sessions(&self) -> Vec<Arc<SessionInfo>> {
        let mut v: Vec<_> = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    pub fn session(&self, id: u64) -> Option<Arc<SessionInfo>> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// `kill <id>`: asks the session to close, telling its client why.
    pub fn kill(&self, id: u64) -> Result<(), String> {
        let s = self
            .session(id)
            .ok_or_else(|| format!("no client with id {id}"))?;
        s.close(CloseReason {
            message: format!("closed by operator (kill {id})"),
            kind: ErrorKind::Killed,
        });
        tracing::info!(pool = %s.pool.name, client = id, addr = %s.addr, "client killed by operator");
        Ok(())
    }

    /// Installs the SQL masker used to display MySQL statements (once; later calls are ignored).
    pub fn set_sql_masker(&self, masker: SqlMasker) {
        let _ = self.sql_masker.set(masker);
    }

    pub(crate) fn sql_masker(&self) -> Option<SqlMasker> {
        self.sql_masker.get().copied()
    }
}
