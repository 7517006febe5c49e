//! Dedicated upstream connections (MULTI/WATCH, blocking commands, subscriptions, tracking),
//! at most `max_pinned` per pool.
//!
//! bb8 keeps the idle connections and their lifetimes; in front of it a FIFO semaphore gives
//! waiters their turn in order (bb8's own waiters are not fair) and bounds the wait by
//! `acquire_timeout`, and the health gate makes clients fail fast while the upstream is down
//! (bb8's `get` would wait out its whole timeout).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::upstream::{self, RedisConn, ServerFacts, UpstreamError, UpstreamSpec};
use crate::pool::{AcquireError, Health};

pub struct Manager {
    spec: UpstreamSpec,
    health: Arc<Health>,
    facts: Arc<std::sync::Mutex<Option<ServerFacts>>>,
    next_id: AtomicU64,
}

impl bb8::ManageConnection for Manager {
    type Connection = RedisConn;
    type Error = UpstreamError;

    async fn connect(&self) -> Result<RedisConn, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("tidepool-{}-dedicated-{id}", self.spec.pool);
        match upstream::connect(&self.spec, false, &name).await {
            Ok((conn, facts)) => {
                self.health.succeeded();
                *self.facts.lock().unwrap_or_else(|e| e.into_inner()) = Some(facts);
                Ok(conn)
            }
            Err(e) => {
                self.health.failed(e.to_string());
                Err(e)
            }
        }
    }

    async fn is_valid(&self, conn: &mut RedisConn) -> Result<(), UpstreamError> {
        conn.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        conn.read_frame().await.map(|_| ())
    }

    fn has_broken(&self, conn: &mut RedisConn) -> bool {
        conn.broken
    }
}

pub struct DedicatedPool {
    pool_name: String,
    addr: String,
    max: usize,
    acquire_timeout: std::time::Duration,
    permits: Arc<Semaphore>,
    bb8: bb8::Pool<Manager>,
    health: Arc<Health>,
}

/// A checked-out dedicated connection. Dropping it returns the connection to the pool — the
/// session must have made it clean first, or set `broken` so that it is closed.
pub struct DedicatedConn {
    pub conn: bb8::PooledConnection<'static, Manager>,
    _permit: OwnedSemaphorePermit,
    pub since: Instant,
}

impl DedicatedPool {
    pub fn new(
        cfg: &crate::config::PoolConfig,
        spec: UpstreamSpec,
        health: Arc<Health>,
        facts: Arc<std::sync::Mutex<Option<ServerFacts>>>,
    ) -> DedicatedPool {
        let max = cfg.redis.as_ref().map_or(1, |r| r.max_pinned);
        let manager = Manager {
            spec,
            health: health.clone(),
            facts,
            next_id: AtomicU64::new(1),
        };
        let bb8 = bb8::Pool::builder()
            .max_size(max as u32)
            .min_idle(None)
            .test_on_check_out(false)
            .retry_connection(false)
            .connection_timeout(cfg.connect_timeout)
            .idle_timeout(Some(cfg.upstream_idle_timeout))
            .max_lifetime(Some(cfg.upstream_max_lifetime))
            .build_unchecked(manager);
        DedicatedPool {
            pool_name: cfg.name.clone(),
            addr: cfg.upstream.clone(),
            max,
            acquire_timeout: cfg.acquire_timeout,
            permits: Arc::new(Semaphore::new(max)),
            bb8,
            health,
        }
    }

    pub fn in_use(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Dedicated connections open (in use or idle in bb8).
    pub fn open(&self) -> usize {
        self.bb8.state().connections as usize
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits (FIFO, at most `acquire_timeout`) for a dedicated connection.
    pub async fn acquire(&self) -> Result<DedicatedConn, AcquireError> {
        let started = Instant::now();
        let exhausted = || AcquireError::Exhausted {
            pool: self.pool_name.clone(),
            what: "dedicated connections (max_pinned)",
            limit: self.max,
            waited: started.elapsed(),
        };
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| exhausted())?
                .map_err(|_| exhausted())?;
        self.get(permit, started).await
    }

    /// A dedicated connection only if one is free right now (the control plane's samples must
    /// neither wait nor add a connection beyond the bound).
    pub async fn try_acquire(&self) -> Option<Result<DedicatedConn, AcquireError>> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.get(permit, Instant::now()).await)
    }

    async fn get(
        &self,
        permit: OwnedSemaphorePermit,
        started: Instant,
    ) -> Result<DedicatedConn, AcquireError> {
        let unavailable = |cause: String| AcquireError::Unavailable {
            addr: self.addr.clone(),
            cause,
        };
        let exhausted = || AcquireError::Exhausted {
            pool: self.pool_name.clone(),
            what: "dedicated connections (max_pinned)",
            limit: self.max,
            waited: started.elapsed(),
        };
        self.health.check().map_err(unavailable)?;
        let remaining = self.acquire_timeout.saturating_sub(started.elapsed());
        let get = async {
            tokio::select! {
                r = self.bb8.get_owned() => r.map_err(|e| match e {
                    bb8::RunError::User(e) => unavailable(e.to_string()),
                    bb8::RunError::TimedOut => exhausted(),
                }),
                cause = self.health.went_down() => Err(unavailable(cause)),
            }
        };
        let conn = tokio::time::timeout(remaining, get)
            .await
            .map_err(|_| exhausted())??;
        Ok(DedicatedConn {
            conn,
            _permit: permit,
            since: Instant::now(),
        })
    }
}
