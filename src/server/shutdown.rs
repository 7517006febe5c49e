//! The one way in to shutdown (`Stopper::stop`) and the phases every listener and session
//! watches: running → draining (no new clients; sessions end when they hold nothing) →
//! closing (drain deadline passed: sessions answer what is pending with an error and close).

use std::time::Duration;

use tokio::sync::watch;

use crate::config::DrainConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Draining,
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// SIGTERM / `shutdown`: drain for `drain.timeout`.
    Drain,
    /// SIGINT: drain for `drain.interrupt_timeout`.
    Interrupt,
    /// `shutdown --now`: close at once.
    Now,
}

#[derive(Clone)]
pub struct Stopper {
    tx: watch::Sender<Phase>,
    drain: DrainConfig,
}

pub fn channel(drain: DrainConfig) -> (Stopper, watch::Receiver<Phase>) {
    let (tx, rx) = watch::channel(Phase::Running);
    (Stopper { tx, drain }, rx)
}

impl Stopper {
    /// Starts shutdown. A second call can only shorten it (e.g. SIGINT after SIGTERM).
    pub fn stop(&self, kind: StopKind) {
        let timeout = match kind {
            StopKind::Drain => self.drain.timeout,
            StopKind::Interrupt => self.drain.interrupt_timeout,
            StopKind::Now => Duration::ZERO,
        };
        if timeout.is_zero() {
            self.tx.send_replace(Phase::Closing);
            return;
        }
        if *self.tx.borrow() != Phase::Running {
            return;
        }
        self.tx.send_replace(Phase::Draining);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            tracing::info!(?timeout, "drain timeout reached: closing remaining clients");
            tx.send_replace(Phase::Closing);
        });
    }

    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has begun.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Running).await;
    }
}
