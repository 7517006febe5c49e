//! Reload (SIGHUP and the admin `reload`): read and validate the file with the same loader as
//! `run`, diff it against the running config, apply the live changes to the running pools
//! (their connections and clients stay), and swap the config in. Anything that would need a
//! pool rebuilt is refused with the keys named; an invalid file is refused with its errors.
//! Either way the old configuration keeps running.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use super::Engine;
use crate::admin::ReloadFn;
use crate::config::Config;
use crate::config::diff::diff;
use crate::registry::Registry;

pub struct Reloader {
    pub path: PathBuf,
    pub config: Arc<Mutex<Arc<Config>>>,
    pub engines: HashMap<String, Engine>,
    pub registry: Arc<Registry>,
}

impl Reloader {
    pub fn into_fn(self) -> ReloadFn {
        let this = Arc::new(self);
        Arc::new(move || {
            let this = this.clone();
            Box::pin(async move { this.reload() })
        })
    }

    fn reload(&self) -> Result<String, String> {
        let result = self.try_reload();
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

    fn try_reload(&self) -> Result<String, String> {
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
        let mut applied = Vec::new();
        for (name, keys) in &d.live {
            let Some(cfg) = new.pool(name) else { continue };
            // The registry's copy is what the sweeper and `pause` read per decision.
            self.registry.pool(cfg);
            match self.engines.get(name) {
                Some(Engine::Redis(p)) => p.set_max_upstream(cfg.max_upstream),
                Some(Engine::Mysql(p)) => p.set_max_upstream(cfg.max_upstream),
                None => {}
            }
            applied.push(format!("{name}: {}", keys.join(", ")));
        }
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(if applied.is_empty() {
            "reloaded: nothing changed".into()
        } else {
            format!("reloaded: {}", applied.join("; "))
        })
    }
}
