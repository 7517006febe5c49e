//! Reload (SIGHUP and the admin `reload`): read and validate the file with the same loader as
//! `run`, diff it against the running config, apply the live changes to the running pools
//! (their connections and clients stay), start pools the file adds and stop accepting for pools
//! it removes (their connected clients carry on until they leave), and swap the config in.
//! Anything that would need a running pool rebuilt is refused with the keys named; an invalid
//! file, or a new pool that cannot listen, is refused with the reason. Either way the old
//! configuration keeps running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Engine, Phase, listener};
use crate::admin::ReloadFn;
use crate::config::diff::diff;
use crate::config::{Config, PoolConfig};
use crate::registry::Registry;

pub struct Reloader {
    pub path: PathBuf,
    pub config: Arc<Mutex<Arc<Config>>>,
    pub pools: Mutex<Running>,
    pub registry: Arc<Registry>,
    pub phase: watch::Receiver<Phase>,
    pub tracker: TaskTracker,
}

/// The pools being served: their engines and what stops their accepting.
pub struct Running {
    pub engines: HashMap<String, Engine>,
    pub acceptors: HashMap<String, CancellationToken>,
}

impl Reloader {
    pub fn into_fn(self) -> ReloadFn {
        let this = Arc::new(self);
        Arc::new(move || {
            let this = this.clone();
            Box::pin(async move { this.reload().await })
        })
    }

    async fn reload(&self) -> Result<String, String> {
        let result = self.try_reload().await;
        match &result {
            Ok(summary) => {
                self.registry.reloads.fetch_add(1, Relaxed);
                tracing::info!(path = %self.path.display(), %summary, "config reloaded");
            }
            Err(why) => {
                self.registry.reload_failures.fetch_add(1, Relaxed);
                tracing::error!(path = %self.path.display(), %why, "reload refused; the running config stays");
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<String, String> {
        let new = Config::load(&self.path).map_err(|e| format!("reload refused: {e}"))?;
        let old = self
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let d = diff(&old, &new);
        if !d.needs_restart.is_empty() {
            return Err(format!(
                "reload refused: these changes need a restart: {}",
                d.needs_restart.join(", ")
            ));
        }
        let started = self.start_pools(&new, &d.added).await?;
        let mut applied = Vec::new();
        let mut running = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        for (listener, engine, cfg) in started {
            let acceptor = listener::Acceptor::new(
                listener,
                engine.clone(),
                Arc::new(cfg.clone()),
                self.phase.clone(),
                self.tracker.clone(),
            );
            running
                .acceptors
                .insert(cfg.name.clone(), acceptor.stop_token());
            running.engines.insert(cfg.name.clone(), engine);
            self.tracker.spawn(acceptor.run());
            tracing::info!(pool = %cfg.name, listen = %cfg.listen, "pool added by reload");
            applied.push(format!("{}: added", cfg.name));
        }
        for name in &d.removed {
            if let Some(stop) = running.acceptors.remove(name) {
                stop.cancel();
            }
            running.engines.remove(name);
            self.registry.remove_pool(name);
            tracing::info!(pool = %name, "pool removed by reload; its connected clients carry on");
            applied.push(format!(
                "{name}: removed (connected clients carry on until they leave)"
            ));
        }
        for (name, keys) in &d.live {
            let Some(cfg) = new.pool(name) else { continue };
            // The registry's copy is what the sweeper and `pause` read per decision.
            self.registry.pool(cfg);
            match running.engines.get(name) {
                Some(Engine::Redis(p)) => p.set_max_upstream(cfg.max_upstream),
                Some(Engine::Mysql(p)) => p.set_max_upstream(cfg.max_upstream),
                None => {}
            }
            applied.push(format!("{name}: {}", keys.join(", ")));
        }
        drop(running);
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(if applied.is_empty() {
            "reloaded: nothing changed".into()
        } else {
            format!("reloaded: {}", applied.join("; "))
        })
    }

    /// Builds and binds every added pool before anything is applied: if one cannot start, the
    /// reload is refused and nothing changes.
    async fn start_pools(
        &self,
        new: &Config,
        added: &[String],
    ) -> Result<Vec<(listener::Listener, Engine, PoolConfig)>, String> {
        let mut started = Vec::new();
        for name in added {
            let Some(cfg) = new.pool(name) else { continue };
            let ready = match Engine::build(cfg, &self.registry) {
                Ok(engine) => listener::bind(cfg).await.map(|l| (l, engine)),
                Err(e) => Err(e),
            };
            match ready {
                Ok((listener, engine)) => started.push((listener, engine, cfg.clone())),
                Err(e) => {
                    for (_, _, cfg) in &started {
                        self.registry.remove_pool(&cfg.name);
                    }
                    self.registry.remove_pool(name);
                    return Err(format!("reload refused: {e}"));
                }
            }
        }
        Ok(started)
    }
}
