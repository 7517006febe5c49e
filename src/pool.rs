//! What every engine's pool shares: the health gate that makes clients fail fast with the
//! upstream's real error while it is down (instead of each one waiting out a timeout), and the
//! errors that say which limit was hit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Notify;

#[cfg(test)]
mod tests;

/// Why a client could not get an upstream connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcquireError {
    #[error(
        "pool '{pool}': all {limit} {what} are in use; waited {} (acquire_timeout)",
        humantime::format_duration(*waited)
    )]
    Exhausted {
        pool: String,
        what: &'static str,
        limit: usize,
        waited: Duration,
    },
    #[error("upstream {addr} is unavailable: {cause}")]
    Unavailable { addr: String, cause: String },
}

/// Failing to reach an upstream at all, for either engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {addr}: {cause}")]
    Refused { addr: String, cause: String },
    #[error(
        "timed out connecting to {addr} after {} (connect_timeout)",
        humantime::format_duration(*timeout)
    )]
    Timeout { addr: String, timeout: Duration },
}

/// Opens a TCP connection to an upstream within `timeout`, with Nagle off (every write is a
/// complete batch of commands).
pub async fn connect_tcp(addr: &str, timeout: Duration) -> Result<TcpStream, ConnectError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(ConnectError::Refused {
            addr: addr.to_string(),
            cause: e.to_string(),
        }),
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.to_string(),
            timeout,
        }),
    }
}

/// First retry after a failure, and the ceiling of the doubling. The ceiling is short so that
/// clients are served again within a second of the upstream's return.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Tracks whether an upstream is reachable. While it is down, one caller per backoff period is
/// let through to try a connection (the probe); everybody else fails fast with the last error.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<Option<Down>>,
    went_down: Notify,
}

#[derive(Debug, Clone)]
struct Down {
    since: Instant,
    error: String,
    retry_at: Instant,
    backoff: Duration,
}

/// What the health gate says to a caller about to connect.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// The upstream is down and this caller is the one that retries now.
    Probe,
}

impl Health {
    pub fn check(&self) -> Result<Gate, String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.as_mut() {
            None => Ok(Gate::Open),
            Some(down) => {
                let now = Instant::now();
                if now < down.retry_at {
                    return Err(down.error.clone());
                }
                down.backoff = (down.backoff * 2).min(MAX_BACKOFF);
                down.retry_at = now + down.backoff;
                Ok(Gate::Probe)
            }
        }
    }

    pub fn failed(&self, error: impl Into<String>) {
        let error = error.into();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match st.as_mut() {
            Some(down) => down.error = error,
            None => {
                tracing::warn!(%error, "upstream is down");
                *st = Some(Down {
                    since: now,
                    error,
                    retry_at: now + FIRST_BACKOFF,
                    backoff: FIRST_BACKOFF,
                });
            }
        }
        drop(st);
        self.went_down.notify_waiters();
    }

    pub fn succeeded(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(down) = st.take() {
            tracing::info!(down_for = ?down.since.elapsed(), "upstream is back");
        }
    }

    /// The last error and since when, while the upstream is down.
    pub fn down_since(&self) -> Option<(Instant, String)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.as_ref().map(|d| (d.since, d.error.clone()))
    }

    /// Resolves the next time the upstream is marked down (to abandon a wait that cannot succeed).
    pub async fn went_down(&self) -> String {
        loop {
            let notified = self.went_down.notified();
            if let Some((_, e)) = self.down_since() {
                return e;
            }
            notified.await;
        }
    }
}
