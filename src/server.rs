//! Listeners and lifecycle: bind every pool's listener, accept clients (within `max_clients`),
//! hand each one to its protocol's session engine, and stop through one path — signals and
//! the admin socket both call `Stopper::stop` — with a bounded drain.

mod listener;
mod reload;
mod shutdown;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::config::{Config, PoolConfig, Protocol};
use crate::redis::RedisPool;
use crate::registry::Registry;

pub use listener::{ClientReader, ClientStream, ClientWriter, Peer};
pub use shutdown::{Phase, StopKind, Stopper};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("pool {pool:?}: cannot listen on {addr}: {source}")]
    Listen {
        pool: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The admin socket or the metrics exporter could not start.
    #[error("{0}")]
    Control(#[source] std::io::Error),
    #[error("pool {pool:?}: cannot set up TLS: {cause}")]
    Tls { pool: String, cause: String },
}

/// A running proxy: its listeners are bound and accepting.
pub struct Proxy {
    local_addrs: HashMap<String, SocketAddr>,
    stopper: Stopper,
    tracker: TaskTracker,
    registry: Arc<Registry>,
    reload: Option<crate::admin::ReloadFn>,
    admin_socket: Option<std::path::PathBuf>,
    /// Stops the control thread (admin socket, sweeper) when the proxy is gone.
    _control: tokio_util::sync::DropGuard,
}

/// One pool's engine, as the accept loop sees it.
#[derive(Clone)]
pub enum Engine {
    Redis(Arc<RedisPool>),
    Mysql(Arc<crate::mysql::pool::MysqlPool>),
}

impl Engine {
    /// The pool's entry in the registry (its live config, stats and pause gate).
    pub fn entry(&self) -> &Arc<crate::registry::PoolEntry> {
        match self {
            Engine::Redis(p) => &p.entry,
            Engine::Mysql(p) => &p.entry,
        }
    }

    fn build(cfg: &PoolConfig, registry: &Arc<Registry>) -> Result<Engine, StartError> {
        match cfg.protocol {
            Protocol::Redis => Ok(Engine::Redis(RedisPool::new(cfg, registry))),
            Protocol::Mysql => {
                let tls = match cfg.mysql.as_ref().and_then(|m| m.tls.as_ref()) {
                    Some(t) => Some(crate::tls::server_config(t).map_err(|e| StartError::Tls {
                        pool: cfg.name.clone(),
                        cause: e,
                    })?),
                    None => None,
                };
                Ok(Engine::Mysql(crate::mysql::pool::MysqlPool::new(
                    cfg,
                    registry,
                    tls.map(tokio_rustls::TlsAcceptor::from),
                )))
            }
        }
    }
}

impl Proxy {
    /// Binds every pool's listener and starts accepting. Returns once all listeners are bound,
    /// so a caller (or a test) can connect immediately.
    pub async fn start(config: Arc<Config>) -> Result<Proxy, StartError> {
        Self::start_with(config, None).await
    }

    /// As `start`; `path` is the file `reload` (SIGHUP, the admin command) re-reads.
    pub async fn start_with(
        config: Arc<Config>,
        path: Option<std::path::PathBuf>,
    ) -> Result<Proxy, StartError> {
        let (stopper, phase) = shutdown::channel(config.drain.clone());
        let tracker = TaskTracker::new();
        let registry = Registry::new();
        let mut local_addrs = HashMap::new();
        let mut bound = Vec::new();
        let mut engines = HashMap::new();
        for pool in &config.pools {
            let engine = Engine::build(pool, &registry)?;
            let listener = listener::bind(pool).await?;
            if let Some(addr) = listener.tcp_addr() {
                local_addrs.insert(pool.name.clone(), addr);
            }
            tracing::info!(pool = %pool.name, protocol = %pool.protocol, listen = %listener.describe(), upstream = %pool.upstream, "listening");
            engines.insert(pool.name.clone(), engine.clone());
            bound.push((listener, engine, pool.clone()));
        }
        let mut acceptors = HashMap::new();
        for (listener, engine, pool) in bound {
            let name = pool.name.clone();
            let acceptor = listener::Acceptor::new(
                listener,
                engine,
                Arc::new(pool),
                phase.clone(),
                tracker.clone(),
            );
            acceptors.insert(name, acceptor.stop_token());
            tracker.spawn(acceptor.run());
        }
        let control_stop = tokio_util::sync::CancellationToken::new();
        let current = Arc::new(std::sync::Mutex::new(config.clone()));
        let reload = path.map(|path| {
            reload::Reloader {
                path,
                config: current.clone(),
                pools: std::sync::Mutex::new(reload::Running { engines, acceptors }),
                registry: registry.clone(),
                phase: phase.clone(),
                tracker: tracker.clone(),
            }
            .into_fn()
        });
        let control = crate::admin::Control {
            registry: registry.clone(),
            stopper: stopper.clone(),
            config: current,
            proxy_rt: tokio::runtime::Handle::current(),
            reload: reload.clone(),
        };
        crate::admin::start(control, control_stop.clone()).map_err(StartError::Control)?;
        Ok(Proxy {
            local_addrs,
            stopper,
            tracker,
            registry,
            reload,
            admin_socket: config.admin.socket.clone(),
            _control: control_stop.drop_guard(),
        })
    }

    /// The TCP address a pool listens on (useful with port 0).
    pub fn local_addr(&self, pool: &str) -> Option<SocketAddr> {
        self.local_addrs.get(pool).copied()
    }

    /// The live sessions and pools (what the admin socket and metrics read).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Re-reads the config file (what SIGHUP does); `None` without a file.
    pub fn reloader(&self) -> Option<crate::admin::ReloadFn> {
        self.reload.clone()
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until a stop was requested and every listener and session has ended (sessions are
    /// bounded by the drain timeout, after which they close themselves).
    pub async fn wait(self) {
        self.stopper.stopped().await;
        self.tracker.close();
        self.tracker.wait().await;
        // Removed here, not only by the control thread: the process may exit before that
        // thread sees the cancellation.
        if let Some(path) = &self.admin_socket {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("stopped");
    }
}
