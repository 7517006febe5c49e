//! Command line: `tidepool run | check`. Every flag can also come from the environment.

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
    },
    /// Validate a config file and print it as it will run (secrets redacted).
    Check {
        #[arg(long, short, env = "TIDEPOOL_CONFIG", default_value = "proxy.toml")]
        config: PathBuf,
    },
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
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
        Command::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(cfg) => Arc::new(cfg),
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            crate::logging::init(&cfg.log);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(cfg: Arc<Config>) -> anyhow::Result<()> {
    let proxy = Proxy::start(cfg).await?;
    let stopper = proxy.stopper();
    tokio::spawn(async move {
        let kind = wait_for_stop_signal().await;
        stopper.stop(kind);
    });
    proxy.wait().await;
    Ok(())
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
