//! A pool's upstream MySQL connections: at most `max_upstream` in total, whatever the mix of
//! upstream accounts and `FOUND_ROWS` (the two things that make connections not
//! interchangeable). Waiters queue FIFO on a semaphore with one permit per connection, so a
//! permit holder always finds an idle connection or room to open one (closing an idle one of
//! another key if need be). While the upstream is down, callers fail fast with its error.
//!
//! bb8 is not used here: it has no keyed connections, no async reset before return, and its
//! `get` waits out the whole timeout when the upstream is down (see FIELD-NOTES); the Redis
//! engine uses it for its dedicated connections, where none of that is needed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::state::Replayable;
use super::upstream::{Login, MysqlConn, ServerFacts, UpstreamError};
use crate::config::PoolConfig;
use crate::pool::{AcquireError, Health};
use crate::registry::{PoolEntry, Registry};

/// What makes two upstream connections interchangeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnKey {
    pub user: String,
    pub found_rows: bool,
}

pub struct MysqlPool {
    pub cfg: Arc<PoolConfig>,
    /// The control plane's view of this pool: live config, stats, pause.
    pub entry: Arc<PoolEntry>,
    pub registry: Arc<Registry>,
    /// `max_upstream`, live (reload changes it).
    max_upstream: AtomicUsize,
    /// Permits still to take out of circulation after `max_upstream` shrank.
    shrink: AtomicUsize,
    /// Which upstream thread serves which client right now (for `KILL`).
    threads: Mutex<HashMap<u64, Serving>>,
    /// TLS offered to clients (`tls_cert`/`tls_key`), if configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Idle>>,
    pub health: Health,
    facts: Mutex<Option<ServerFacts>>,
}

/// A client of this pool and the upstream thread serving it.
#[derive(Debug, Clone)]
pub struct Serving {
    pub user: String,
    pub thread: Option<u32>,
}

#[derive(Default)]
struct Idle {
    /// Boxed, as in `Checkout`: a connection moves between the two by pointer.
    #[allow(clippy::vec_box)]
    conns: Vec<Box<MysqlConn>>,
    /// Open connections: idle plus checked out.
    open: usize,
}

/// A checked-out connection. Give it back with `MysqlPool::put` (after making it clean);
/// dropping it closes the connection and frees its place in the bound.
pub struct Checkout {
    /// Boxed: a checkout lives in every session future that runs a statement, and an inline
    /// connection (~300 B) made each of those, hence every idle client's task, larger.
    conn: Option<Box<MysqlConn>>,
    idle: Arc<Mutex<Idle>>,
    permit: Option<OwnedSemaphorePermit>,
    pub since: Instant,
}

impl Checkout {
    pub fn conn(&mut self) -> &mut MysqlConn {
        self.conn
            .as_mut()
            .expect("a checkout holds its connection until put or dropped")
    }

    pub fn get(&self) -> &MysqlConn {
        self.conn
            .as_ref()
            .expect("a checkout holds its connection until put or dropped")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if self.conn.take().is_some() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
        }
    }
}

const REAP_INTERVAL: Duration = Duration::from_secs(5);

impl MysqlPool {
    pub fn new(
        cfg: &PoolConfig,
        registry: &Arc<Registry>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Arc<MysqlPool> {
        let pool = Arc::new(MysqlPool {
            tls,
            cfg: Arc::new(cfg.clone()),
            entry: registry.pool(cfg),
            registry: registry.clone(),
            max_upstream: AtomicUsize::new(cfg.max_upstream),
            shrink: AtomicUsize::new(0),
            threads: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(cfg.max_upstream)),
            idle: Arc::new(Mutex::new(Idle::default())),
            health: Health::default(),
            facts: Mutex::new(None),
        });
        pool.entry
            .set_upstream(Arc::new(super::view::MysqlView(Arc::downgrade(&pool))));
        registry.set_sql_masker(super::protocol::sqlscan::mask_literals);
        tokio::spawn(reap(Arc::downgrade(&pool)));
        pool
    }

    /// The pool's configuration as of the last reload: tunables (timeouts, users, limits) are
    /// read from here per decision; `cfg` keeps what only a restart changes (name, addresses).
    pub fn live(&self) -> Arc<PoolConfig> {
        self.entry.cfg()
    }

    pub fn max_upstream(&self) -> usize {
        self.max_upstream.load(Ordering::Relaxed)
    }

    /// Applies a reloaded `max_upstream`: more permits at once; fewer as connections come back
    /// (busy ones are never taken away from their clients).
    pub fn set_max_upstream(&self, n: usize) {
        let old = self.max_upstream.swap(n, Ordering::Relaxed);
        if n > old {
            let owed = self.shrink.swap(0, Ordering::Relaxed);
            let add = (n - old).saturating_sub(owed);
            self.shrink
                .fetch_add(owed.saturating_sub(n - old), Ordering::Relaxed);
            self.permits.add_permits(add);
        } else if n < old {
            let forgotten = self.permits.forget_permits(old - n);
            self.shrink
                .fetch_add(old - n - forgotten, Ordering::Relaxed);
            self.reap();
        }
    }

    /// A login for the control plane's own short-lived connections.
    pub fn monitor_login(&self) -> Option<Login> {
        let live = self.live();
        let user = live.users.first()?;
        Some(Login {
            addr: self.cfg.upstream.clone(),
            user: user.upstream_user.clone(),
            password: user.upstream_password.expose().to_string(),
            found_rows: false,
            connect_timeout: self.live().connect_timeout,
        })
    }

    /// Records that `client` (logged in as `user`) is served by upstream `thread` (`None`:
    /// by nobody right now).
    pub fn serving(&self, client: u64, user: &str, thread: Option<u32>) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        // Called twice per statement: the common case changes only the thread, in place.
        match threads.get_mut(&client) {
            Some(s) if s.user == user => s.thread = thread,
            _ => {
                threads.insert(
                    client,
                    Serving {
                        user: user.to_string(),
                        thread,
                    },
                );
            }
        }
    }

    pub fn gone(&self, client: u64) {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client);
    }

    /// Who serves `client`, if it is this pool's.
    pub fn served_by(&self, client: u64) -> Option<Serving> {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&client)
            .cloned()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn in_use(&self) -> usize {
        self.max_upstream()
            .saturating_sub(self.permits.available_permits())
    }

    pub fn open(&self) -> usize {
        self.idle().open
    }

    /// What the server says about itself (connecting once if nobody has yet).
    pub async fn facts(&self, login: &Login) -> Result<ServerFacts, AcquireError> {
        if let Some(f) = self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(f);
        }
        let key = ConnKey {
            user: login.user.clone(),
            found_rows: login.found_rows,
        };
        let checkout = self.acquire(&key, login, &Replayable::default()).await?;
        self.put(checkout);
        self.facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| AcquireError::Unavailable {
                addr: self.cfg.upstream.clone(),
                cause: "no server information yet".into(),
            })
    }

    /// Waits (FIFO, at most `acquire_timeout`) for a connection with `key`, preferring one whose
    /// session already matches `want`.
    pub async fn acquire(
        &self,
        key: &ConnKey,
        login: &Login,
        want: &Replayable,
    ) -> Result<Checkout, AcquireError> {
        let started = Instant::now();
        let exhausted = || AcquireError::Exhausted {
            pool: self.cfg.name.clone(),
            what: "upstream connections (max_upstream)",
            limit: self.max_upstream(),
            waited: started.elapsed(),
        };
        let permit = tokio::time::timeout(
            self.live().acquire_timeout,
            self.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| exhausted())?
        .map_err(|_| exhausted())?;
        self.take(permit, key, login, want, exhausted).await
    }

    /// A connection only if one is free right now (the control plane's samples must neither
    /// wait nor add a connection beyond the bound).
    pub async fn try_acquire(
        &self,
        key: &ConnKey,
        login: &Login,
    ) -> Option<Result<Checkout, AcquireError>> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        let exhausted = || AcquireError::Exhausted {
            pool: self.cfg.name.clone(),
            what: "upstream connections (max_upstream)",
            limit: self.max_upstream(),
            waited: std::time::Duration::ZERO,
        };
        Some(
            self.take(permit, key, login, &Replayable::default(), exhausted)
                .await,
        )
    }

    /// With a permit in hand: an idle connection for `key` (the best match for `want`), or a
    /// new one.
    async fn take(
        &self,
        permit: OwnedSemaphorePermit,
        key: &ConnKey,
        login: &Login,
        want: &Replayable,
        exhausted: impl Fn() -> AcquireError,
    ) -> Result<Checkout, AcquireError> {
        let evicted = {
            let mut idle = self.idle();
            let matching = |c: &MysqlConn| c.user == key.user && c.found_rows == key.found_rows;
            // The most recently used connection whose session already matches (stopping at the
            // first: under load they all do), else the best partial match.
            let mut best: Option<(usize, (bool, bool))> = None;
            for (i, c) in idle.conns.iter().enumerate().rev() {
                if !matching(c) {
                    continue;
                }
                let fit = (c.state.schema == want.schema, c.state.vars == want.vars);
                if fit == (true, true) {
                    best = Some((i, fit));
                    break;
                }
                if best.is_none_or(|(_, b)| fit > b) {
                    best = Some((i, fit));
                }
            }
            let best = best.map(|(i, _)| i);
            if let Some(i) = best {
                let conn = idle.conns.swap_remove(i);
                return Ok(self.checkout(conn, permit));
            }
            // Holding a permit means a connection is free: idle with another key, or not open.
            if idle.open < self.max_upstream() {
                idle.open += 1;
                None
            } else if idle.conns.is_empty() {
                return Err(exhausted());
            } else {
                Some(idle.conns.remove(0))
            }
        };
        if let Some(old) = evicted {
            // Closed properly, and gone from the server's count, before its replacement
            // connects: the upstream never sees more than max_upstream.
            Box::pin(old.quit()).await;
        }
        match Box::pin(self.connect(login)).await {
            Ok(conn) => Ok(self.checkout(conn, permit)),
            Err(e) => {
                self.idle().open -= 1;
                Err(e)
            }
        }
    }

    fn checkout(&self, conn: Box<MysqlConn>, permit: OwnedSemaphorePermit) -> Checkout {
        Checkout {
            conn: Some(conn),
            idle: self.idle.clone(),
            permit: Some(permit),
            since: Instant::now(),
        }
    }

    async fn connect(&self, login: &Login) -> Result<Box<MysqlConn>, AcquireError> {
        let unavailable = |cause: String| AcquireError::Unavailable {
            addr: self.cfg.upstream.clone(),
            cause,
        };
        self.health.check().map_err(unavailable)?;
        match MysqlConn::connect(login).await {
            Ok((conn, facts)) => {
                self.health.succeeded();
                *self.facts.lock().unwrap_or_else(|e| e.into_inner()) = Some(facts);
                tracing::debug!(pool = %self.cfg.name, thread = conn.thread_id, "upstream connection opened");
                Ok(Box::new(conn))
            }
            Err(e) => {
                // An upstream that refuses (wrong password, its own max_connections) is up;
                // only failures to reach it make everyone else fail fast.
                if !matches!(e, UpstreamError::Refused { .. }) {
                    self.health.failed(e.to_string());
                }
                Err(unavailable(describe(&e)))
            }
        }
    }

    /// Returns a clean connection to the idle set (a broken one is closed).
    pub fn put(&self, mut checkout: Checkout) {
        let Some(mut conn) = checkout.conn.take() else {
            return;
        };
        let shrinking = self
            .shrink
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if shrinking {
            // max_upstream was lowered: this connection and its permit leave circulation.
            if let Some(permit) = checkout.permit.take() {
                permit.forget();
            }
            self.idle().open -= 1;
            return;
        }
        if conn.broken {
            self.idle().open -= 1;
            return;
        }
        conn.last_used = Instant::now();
        self.idle().conns.push(conn);
    }

    /// Opens connections (as the first user, the pool's common case) until `min_idle` are
    /// open, so that a burst after a quiet spell does not wait for logins. Stops at the first
    /// failure; the health gate keeps it from hammering a down upstream.
    async fn fill_min_idle(&self) {
        let Some(login) = self.monitor_login() else {
            return;
        };
        loop {
            let want = self.live().min_idle.min(self.max_upstream());
            {
                let mut idle = self.idle();
                if idle.open >= want {
                    return;
                }
                idle.open += 1;
            }
            match self.connect(&login).await {
                Ok(conn) => self.idle().conns.push(conn),
                Err(e) => {
                    self.idle().open -= 1;
                    tracing::debug!(pool = %self.cfg.name, error = %e, "could not open a min_idle connection");
                    return;
                }
            }
        }
    }

    /// Closes idle connections past `upstream_idle_timeout` or `upstream_max_lifetime`, and
    /// any beyond a lowered `max_upstream`.
    fn reap(&self) {
        let now = Instant::now();
        let max = self.max_upstream();
        let mut idle = self.idle();
        let before = idle.conns.len();
        let (idle_timeout, lifetime) = (
            self.live().upstream_idle_timeout,
            self.live().upstream_max_lifetime,
        );
        idle.conns.retain(|c| {
            now.duration_since(c.last_used) < idle_timeout
                && now.duration_since(c.created) < lifetime
        });
        let mut closed = before - idle.conns.len();
        idle.open -= closed;
        while idle.open > max && !idle.conns.is_empty() {
            idle.conns.remove(0);
            idle.open -= 1;
            closed += 1;
        }
        if closed > 0 {
            tracing::debug!(pool = %self.cfg.name, closed, "closed idle upstream connections");
        }
    }
}

/// The cause as a client should read it; the upstream's own max_connections is named.
fn describe(e: &UpstreamError) -> String {
    match e.upstream_err() {
        Some(err) if err.code == 1040 => {
            format!(
                "{e}; the upstream's own max_connections is reached (raise it, or lower max_upstream)"
            )
        }
        _ => e.to_string(),
    }
}

async fn reap(pool: std::sync::Weak<MysqlPool>) {
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => {
                p.reap();
                p.fill_min_idle().await;
            }
            None => return,
        }
    }
}
