//! The control plane's thread: the admin socket, the sweeper and the metrics run here, on a current-thread
//! runtime of their own, so an operator gets answers while the proxy's runtime is saturated.
//! Commands that change the proxy (`shutdown`, `reload`) are handed to the proxy's runtime.

pub mod client;
pub mod proto;
mod render;
mod server;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::registry::{PoolEntry, Registry, SessionState, sweeper};
use crate::server::{StopKind, Stopper};
use proto::{Request, Response};

/// Runs `reload` on the proxy's runtime: Ok(summary) or Err(why it was refused).
pub type ReloadFn =
    Arc<dyn Fn() -> crate::registry::BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// What admin commands act on.
pub struct Control {
    pub registry: Arc<Registry>,
    pub stopper: Stopper,
    /// The running configuration (replaced by reloads).
    pub config: Arc<Mutex<Arc<Config>>>,
    /// The proxy's runtime, where shutdown and reload run.
    pub proxy_rt: tokio::runtime::Handle,
    /// `None` when the proxy was started without a config file (nothing to re-read).
    pub reload: Option<ReloadFn>,
}

/// Starts the control thread. The admin socket (if configured) is bound before this returns,
/// so a bad path fails the start.
pub fn start(ctl: Control, stop: CancellationToken) -> std::io::Result<()> {
    let socket = ctl.config().admin.socket.clone();
    let listener = match &socket {
        Some(path) => Some((
            server::bind(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("admin socket {}: {e}", path.display()))
            })?,
            path.clone(),
        )),
        None => None,
    };
    let exporter = crate::metrics::Exporter::new(&ctl.config().metrics)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let ctl = Arc::new(ctl);
    std::thread::Builder::new()
        .name("tidepool-control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the control runtime");
                    return;
                }
            };
            rt.block_on(async move {
                tokio::spawn(sweeper::run(ctl.registry.clone(), stop.clone()));
                if let Some(exporter) = exporter {
                    tokio::spawn(exporter.run(ctl.registry.clone(), stop.clone()));
                }
                match listener {
                    Some((l, path)) => server::serve(l, path, ctl, stop).await,
                    None => stop.cancelled().await,
                }
            });
        })?;
    Ok(())
}

impl Control {
    pub fn config(&self) -> Arc<Config> {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn handle(&self, req: Request) -> Response {
        let reg = &self.registry;
        match req {
            Request::ShowPools => Response::Pools(reg.pool_rows()),
            Request::ShowClients => Response::Clients(reg.client_rows(false)),
            Request::ShowLeaks => Response::Leaks(reg.client_rows(true)),
            Request::ShowUpstreams => Response::Upstreams(reg.upstream_rows()),
            Request::ShowStats => Response::Stats(reg.stats_rows()),
            Request::ShowConfig => Response::Config(self.config().to_redacted_toml()),
            Request::ShowVersion => {
                Response::Version(format!("tidepool {}", env!("CARGO_PKG_VERSION")))
            }
            Request::Help => Response::Help(proto::USAGE.into()),
            Request::Kill(id) => match reg.kill(id) {
                Ok(()) => Response::Ok(format!("client {id} is being closed")),
                Err(e) => Response::Error(e),
            },
            Request::Pause(pool) => self.pause(pool).await,
            Request::Resume(pool) => self.resume(pool),
            Request::Reload => self.reload().await,
            Request::Shutdown { now } => self.shutdown(now),
        }
    }

    fn select_pools(&self, name: Option<&str>) -> Result<Vec<Arc<PoolEntry>>, String> {
        match name {
            None => Ok(self.registry.pools()),
            Some(n) => self
                .registry
                .find_pool(n)
                .map(|p| vec![p])
                .ok_or_else(|| format!("no pool named {n:?}")),
        }
    }

    /// Holds new work, then waits (up to `drain.timeout`) for open transactions and commands in
    /// flight to finish, so that on return the pools are quiet.
    async fn pause(&self, name: Option<String>) -> Response {
        let pools = match self.select_pools(name.as_deref()) {
            Ok(p) => p,
            Err(e) => return Response::Error(e),
        };
        for p in &pools {
            if p.set_paused(true) {
                tracing::info!(pool = %p.name, "paused by operator");
            }
        }
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        let limit = self.config().drain.timeout;
        let started = Instant::now();
        loop {
            let busy: Vec<u64> = self
                .registry
                .sessions()
                .iter()
                .filter(|s| pools.iter().any(|p| Arc::ptr_eq(p, &s.pool)))
                .filter(|s| s.is_leakable() || s.state() == SessionState::Active)
                .map(|s| s.id)
                .collect();
            if busy.is_empty() {
                return Response::Ok(format!(
                    "paused {}; no transaction or command is open",
                    names.join(", ")
                ));
            }
            if started.elapsed() >= limit {
                return Response::Ok(format!(
                    "paused {}; after {} (drain.timeout) these clients still hold a transaction or a command: {busy:?}",
                    names.join(", "),
                    humantime::format_duration(limit)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn resume(&self, name: Option<String>) -> Response {
        match self.select_pools(name.as_deref()) {
            Ok(pools) => {
                let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
                for p in &pools {
                    if p.set_paused(false) {
                        tracing::info!(pool = %p.name, "resumed by operator");
                    }
                }
                Response::Ok(format!("resumed {}", names.join(", ")))
            }
            Err(e) => Response::Error(e),
        }
    }

    async fn reload(&self) -> Response {
        let Some(reload) = &self.reload else {
            return Response::Error(
                "this proxy was not started from a config file; there is nothing to re-read".into(),
            );
        };
        match self.proxy_rt.spawn(reload()).await {
            Ok(Ok(summary)) => Response::Ok(summary),
            Ok(Err(why)) => Response::Error(why),
            Err(e) => Response::Error(format!("reload task failed: {e}")),
        }
    }

    /// The same path as SIGTERM (`Stopper::stop`), run on the proxy's runtime whose tasks
    /// the drain timer belongs with.
    fn shutdown(&self, now: bool) -> Response {
        let kind = if now { StopKind::Now } else { StopKind::Drain };
        let stopper = self.stopper.clone();
        self.proxy_rt.spawn(async move { stopper.stop(kind) });
        tracing::info!(?kind, "shutdown requested on the admin socket");
        Response::Ok(if now {
            "shutting down now".into()
        } else {
            format!(
                "shutting down: draining for up to {} (drain.timeout)",
                humantime::format_duration(self.config().drain.timeout)
            )
        })
    }
}

/// Where `tidepool admin` finds the socket: `--socket`, else the config file's `[admin] socket`.
pub fn socket_path(
    socket: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> Result<PathBuf, String> {
    if let Some(s) = socket {
        return Ok(s);
    }
    let path = config.unwrap_or(std::path::Path::new("proxy.toml"));
    Config::admin_socket(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: [admin] socket is not set", path.display()))
}
