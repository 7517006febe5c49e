//! The Redis engine. Clients share up to `max_upstream` pipelined lanes per pool; state that
//! only one connection can hold (MULTI/WATCH, blocking commands, subscriptions) moves a client
//! to one of at most `max_pinned` dedicated connections until the state ends.
//!
//! Lanes are not fixed to a db or protocol: the lane writer switches in-stream (`SELECT`,
//! `HELLO`) when the next client's batch needs it, and lane choice prefers a lane already in
//! the right (db, protocol), so the bound holds for any mix of clients.

pub mod command;
pub mod dedicated;
pub mod lane;
pub mod resp;
pub mod session;
pub mod state;
pub mod upstream;
mod view;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::PoolConfig;
use crate::pool::{AcquireError, Gate, Health};
use crate::registry::{PoolEntry, Registry};
use dedicated::DedicatedPool;
use lane::Lane;
use resp::Limits;
use upstream::{ServerFacts, UpstreamSpec};

pub struct RedisPool {
    pub cfg: Arc<PoolConfig>,
    spec: UpstreamSpec,
    limits: Limits,
    lanes: Mutex<LaneSet>,
    lane_changed: Notify,
    next_lane_id: AtomicU64,
    /// `max_upstream`, live: a reload changes it without a restart.
    max_upstream: AtomicUsize,
    pub health: Arc<Health>,
    facts: Arc<Mutex<Option<ServerFacts>>>,
    pub dedicated: DedicatedPool,
    /// The control plane's side: sessions register here, the pool reports its upstreams.
    pub registry: Arc<Registry>,
    pub entry: Arc<PoolEntry>,
}

#[derive(Default)]
struct LaneSet {
    open: Vec<Arc<Lane>>,
    connecting: usize,
}

enum Choice {
    Lane(Arc<Lane>),
    Connect,
    Wait,
}

impl LaneSet {
    /// An idle lane in `want`, else (while under `max`) a new lane, else the least loaded.
    fn choose(&mut self, want: u32, max: usize) -> Choice {
        self.open.retain(|l| !l.is_dead());
        let full = self.open.len() + self.connecting >= max;
        let best = self
            .open
            .iter()
            .min_by_key(|l| (l.inflight(), l.key() != want));
        match best {
            Some(l) if full || l.inflight() == 0 => Choice::Lane(l.clone()),
            _ if !full => Choice::Connect,
            _ => Choice::Wait,
        }
    }
}

/// How often idle and over-age lanes are looked for.
const REAP_INTERVAL: Duration = Duration::from_secs(5);

impl RedisPool {
    pub fn new(cfg: &PoolConfig, registry: &Arc<Registry>) -> Arc<RedisPool> {
        let redis = cfg.redis.as_ref();
        let spec = UpstreamSpec {
            pool: cfg.name.clone(),
            addr: cfg.upstream.clone(),
            username: redis.and_then(|r| r.username.clone()),
            password: redis.and_then(|r| r.password.clone()),
            connect_timeout: cfg.connect_timeout,
        };
        let health = Arc::new(Health::default());
        let facts = Arc::new(Mutex::new(None));
        let limits = Limits {
            max_bulk_len: cfg.max_command_bytes,
            ..Limits::default()
        };
        let pool = Arc::new(RedisPool {
            dedicated: DedicatedPool::new(cfg, spec.clone(), health.clone(), facts.clone()),
            cfg: Arc::new(cfg.clone()),
            spec,
            limits,
            lanes: Mutex::new(LaneSet::default()),
            lane_changed: Notify::new(),
            next_lane_id: AtomicU64::new(1),
            max_upstream: AtomicUsize::new(cfg.max_upstream),
            health,
            facts,
            entry: registry.pool(cfg),
            registry: registry.clone(),
        });
        pool.entry
            .set_upstream(Arc::new(view::RedisView(Arc::downgrade(&pool))));
        tokio::spawn(reap_lanes(Arc::downgrade(&pool)));
        pool
    }

    /// Reload: a smaller bound takes effect as lanes go idle (the reaper closes the excess),
    /// a larger one at the next lane choice.
    pub fn set_max_upstream(&self, n: usize) {
        self.max_upstream.store(n, Ordering::Relaxed);
        self.lane_changed.notify_waiters();
    }

    pub fn max_upstream(&self) -> usize {
        self.max_upstream.load(Ordering::Relaxed)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn password_required(&self) -> bool {
        self.spec.password.is_some()
    }

    /// Checks credentials the way Redis does for `AUTH [user] pass`.
    pub fn credentials_ok(&self, user: Option<&[u8]>, pass: &[u8]) -> bool {
        let Some(expected) = &self.spec.password else {
            return false;
        };
        let want_user = self.spec.username.as_deref().unwrap_or("default");
        user.is_none_or(|u| u == want_user.as_bytes()) && pass == expected.expose().as_bytes()
    }

    pub fn username(&self) -> &str {
        self.spec.username.as_deref().unwrap_or("default")
    }

    pub fn open_lanes(&self) -> usize {
        self.lock().open.iter().filter(|l| !l.is_dead()).count()
    }

    /// What the upstream said about itself, connecting a lane first if nothing has yet.
    pub async fn facts(&self) -> Result<ServerFacts, AcquireError> {
        if let Some(f) = self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(f);
        }
        let lane = self.pick_lane(0, false, 0).await?;
        drop(lane);
        self.facts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| AcquireError::Unavailable {
                addr: self.spec.addr.clone(),
                cause: "no server information yet".into(),
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneSet> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chooses a lane for `n` commands in (db, protocol) and reserves their replies. Prefers an
    /// idle lane already in that (db, protocol), then opens a new lane while under
    /// `max_upstream`, then pipelines onto the least loaded one.
    pub async fn pick_lane(
        &self,
        db: u16,
        resp3: bool,
        n: usize,
    ) -> Result<Arc<Lane>, AcquireError> {
        match self.choose(lane::key(db, resp3), n) {
            Choice::Lane(l) => Ok(l),
            // Rare paths, boxed so that every session's future does not carry a connect.
            Choice::Connect => Box::pin(self.open_lane(db, resp3, n)).await,
            Choice::Wait => Box::pin(self.wait_for_lane(db, resp3, n)).await,
        }
    }

    /// `pick_lane` when it needs no waiting: a lane chosen and reserved, or `None` (nothing
    /// reserved) when a lane is to be opened or waited for.
    pub fn try_pick_lane(&self, db: u16, resp3: bool, n: usize) -> Option<Arc<Lane>> {
        let mut set = self.lock();
        match set.choose(lane::key(db, resp3), self.max_upstream()) {
            Choice::Lane(l) => {
                l.reserve(n);
                Some(l)
            }
            Choice::Connect | Choice::Wait => None,
        }
    }

    /// Takes a lane or a connecting slot under the lock.
    fn choose(&self, want: u32, n: usize) -> Choice {
        let mut set = self.lock();
        let choice = set.choose(want, self.max_upstream());
        match &choice {
            Choice::Lane(l) => l.reserve(n),
            Choice::Connect => set.connecting += 1,
            Choice::Wait => {}
        }
        choice
    }

    /// Every slot is a lane still connecting: waits for one, up to `acquire_timeout`.
    async fn wait_for_lane(
        &self,
        db: u16,
        resp3: bool,
        n: usize,
    ) -> Result<Arc<Lane>, AcquireError> {
        let started = Instant::now();
        loop {
            // Created before looking, so a change made after the look still wakes it.
            let notified = self.lane_changed.notified();
            match self.choose(lane::key(db, resp3), n) {
                Choice::Lane(l) => return Ok(l),
                Choice::Connect => return self.open_lane(db, resp3, n).await,
                Choice::Wait => {}
            }
            let left = self.cfg.acquire_timeout.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, notified).await.is_err() {
                return Err(AcquireError::Exhausted {
                    pool: self.cfg.name.clone(),
                    what: "upstream lanes (max_upstream)",
                    limit: self.max_upstream(),
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Connects a new lane (a connecting slot was reserved by the caller).
    async fn open_lane(&self, db: u16, resp3: bool, n: usize) -> Result<Arc<Lane>, AcquireError> {
        let result = match self.health.check() {
            Err(cause) => Err(cause),
            Ok(gate) => {
                let id = self.next_lane_id.fetch_add(1, Ordering::Relaxed);
                let name = format!("tidepool-{}-lane-{id}", self.cfg.name);
                match upstream::connect(&self.spec, resp3, &name).await {
                    Ok((conn, facts)) => {
                        if gate == Gate::Probe {
                            tracing::info!(pool = %self.cfg.name, "upstream reachable again");
                        }
                        self.health.succeeded();
                        *self.facts.lock().unwrap_or_else(|e| e.into_inner()) = Some(facts);
                        Ok(Lane::spawn(conn, id, self.limits))
                    }
                    Err(e) => {
                        self.health.failed(e.to_string());
                        Err(e.to_string())
                    }
                }
            }
        };
        let mut set = self.lock();
        set.connecting -= 1;
        let picked = match result {
            Ok(lane) => {
                tracing::debug!(pool = %self.cfg.name, lane = lane.id, db, resp3, "lane opened");
                set.open.push(lane.clone());
                Ok(lane)
            }
            // A lane that is still up serves better than an error (e.g. the upstream refuses
            // new connections at its own maxclients, but existing ones work).
            Err(cause) => match set
                .open
                .iter()
                .filter(|l| !l.is_dead())
                .min_by_key(|l| l.inflight())
            {
                Some(l) => Ok(l.clone()),
                None => Err(AcquireError::Unavailable {
                    addr: self.spec.addr.clone(),
                    cause,
                }),
            },
        };
        if let Ok(l) = &picked {
            l.reserve(n);
        }
        drop(set);
        self.lane_changed.notify_waiters();
        picked
    }

    /// Closes lanes idle past `upstream_idle_timeout` or older than `upstream_max_lifetime`
    /// (only when nothing is in flight on them).
    fn reap(&self) {
        let now = Instant::now();
        let mut set = self.lock();
        let mut live = set.open.iter().filter(|l| !l.is_dead()).count();
        set.open.retain(|l| {
            let idle = now.duration_since(l.idle_since(now)) >= self.cfg.upstream_idle_timeout;
            let old = now.duration_since(l.created) >= self.cfg.upstream_max_lifetime;
            let excess = live > self.max_upstream();
            let keep = l.is_dead() || l.inflight() > 0 || !(idle || old || excess);
            if !keep {
                live -= 1;
            }
            if !keep {
                tracing::debug!(pool = %self.cfg.name, lane = l.id, idle, old, "closing lane");
                l.close();
            }
            keep && !l.is_dead()
        });
    }
}

async fn reap_lanes(pool: std::sync::Weak<RedisPool>) {
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.reap(),
            None => return,
        }
    }
}
