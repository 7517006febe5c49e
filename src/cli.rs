//! Command line: `tidepool run | check | admin`. Every flag can also come from the environment.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::server::{Proxy, StopKind};

#[derive(Debug, Parser)]
#[command(
    name = "tidepool",
    version,
    about = "Connection-pooling proxy for MySQL/MariaDB and Redis"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, short, env = "TIDEPOOL_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
        /// Threads serving clients. 1 (the default) runs every session on one thread with no
        /// cross-thread wake-ups, which measured cheapest per request for a sidecar sharing a
        /// few cores with its application and database; more spread the load over N threads.
        #[arg(long, env = "TIDEPOOL_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        threads: u16,
    },
    /// Validate a config file and print it as it will run (secrets redacted).
    Check {
        #[arg(long, short, env = "TIDEPOOL_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Ask a running proxy through its admin socket (`tidepool admin help` lists commands).
    Admin {
        /// Find the socket in this config file's `[admin] socket`.
        #[arg(long, short, env = "TIDEPOOL_CONFIG")]
        config: Option<PathBuf>,
        /// The admin socket itself (overrides --config).
        #[arg(long, short, env = "TIDEPOOL_ADMIN_SOCKET")]
        socket: Option<PathBuf>,
        /// JSON instead of a text table.
        #[arg(long)]
        json: bool,
        /// The command, e.g. `show pools`, `kill 17`, `shutdown --now`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Admin {
            config,
            socket,
            json,
            command,
        } => admin(config, socket, json, &command),
        Command::Check { config } => match Config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.to_redacted_toml());
                eprintln!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Run { config, threads } => {
            let cfg = match Config::load(&config) {
                Ok(cfg) => Arc::new(cfg),
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            crate::logging::init(&cfg.log);
            let rt = match runtime(threads) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(cfg, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn admin(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    json: bool,
    words: &[String],
) -> ExitCode {
    let result = crate::admin::socket_path(socket, config.as_deref())
        .and_then(|path| crate::admin::client::call(&path, words, json));
    match result {
        Ok((out, failed)) => {
            print!("{out}");
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("tidepool admin: {e}");
            ExitCode::from(2)
        }
    }
}

/// The runtime sessions run on: current-thread for one thread, else multi-thread.
fn runtime(threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(threads));
        b
    };
    builder.enable_all().build()
}

async fn run(cfg: Arc<Config>, path: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed before anything can answer, so an early SIGHUP never takes the default action
    // (terminating the process).
    let hup = signal(SignalKind::hangup());
    let proxy = Proxy::start_with(cfg, Some(path)).await?;
    match (hup, proxy.reloader()) {
        (Ok(hup), Some(reload)) => {
            tokio::spawn(reload_on_sighup(hup, reload));
        }
        (Err(e), _) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reload with `tidepool admin reload`")
        }
        (Ok(_), None) => {}
    }
    let stopper = proxy.stopper();
    tokio::spawn(async move {
        let kind = wait_for_stop_signal().await;
        stopper.stop(kind);
    });
    proxy.wait().await;
    Ok(())
}

/// SIGHUP: the same reload as the admin command (it logs the outcome itself).
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, reload: crate::admin::ReloadFn) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        let _ = reload().await;
    }
}

async fn wait_for_stop_signal() -> StopKind {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM: draining"); StopKind::Drain }
        _ = int.recv() => { tracing::info!("SIGINT: draining (short)"); StopKind::Interrupt }
    }
}
