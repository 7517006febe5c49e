//! The MySQL pool as the control plane sees it: connection counts, health, and the upstream
//! server's own `Threads_connected` / `max_connections`.

use std::sync::Weak;
use std::time::Instant;

use super::pool::MysqlPool;
use crate::registry::{BoxFuture, ServerLoad, UpstreamCounts, UpstreamView};

/// Holds the pool weakly: the registry must not keep a replaced pool alive.
pub struct MysqlView(pub Weak<MysqlPool>);

impl UpstreamView for MysqlView {
    fn counts(&self) -> UpstreamCounts {
        let Some(p) = self.0.upgrade() else {
            return UpstreamCounts::default();
        };
        let open = p.open();
        let in_use = p.in_use();
        UpstreamCounts {
            open,
            idle: open.saturating_sub(in_use),
            in_use,
            max: p.max_upstream(),
            ..UpstreamCounts::default()
        }
    }

    fn down_since(&self) -> Option<(Instant, String)> {
        self.0.upgrade()?.health.down_since()
    }

    fn sample_server(&self) -> BoxFuture<'_, Result<ServerLoad, String>> {
        Box::pin(async move {
            let p = self.0.upgrade().ok_or("pool was replaced")?;
            let login = p.monitor_login().ok_or("the pool has no users")?;
            let key = super::pool::ConnKey {
                user: login.user.clone(),
                found_rows: false,
            };
            // A pooled connection, only if one is free now: sampling must not add one.
            let mut checkout = p
                .try_acquire(&key, &login)
                .await
                .ok_or("every upstream connection is busy")?
                .map_err(|e| e.to_string())?;
            let conn = checkout.conn();
            let connected = conn
                .query_value("SHOW GLOBAL STATUS LIKE 'Threads_connected'", 1)
                .await;
            let max = conn.query_value("SELECT @@max_connections", 0).await.ok();
            p.put(checkout);
            Ok(ServerLoad {
                connected: connected?,
                max,
            })
        })
    }
}
