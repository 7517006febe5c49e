//! The Redis pool as the control plane sees it: lane and dedicated-connection counts, health,
//! and the upstream server's own `connected_clients` / `maxclients`.

use std::sync::Weak;
use std::time::Instant;

use super::RedisPool;
use super::resp::Value;
use super::upstream::map_get;
use crate::registry::{BoxFuture, ServerLoad, UpstreamCounts, UpstreamView};

/// Holds the pool weakly: the registry must not keep a replaced pool alive.
pub struct RedisView(pub Weak<RedisPool>);

impl UpstreamView for RedisView {
    fn counts(&self) -> UpstreamCounts {
        let Some(p) = self.0.upgrade() else {
            return UpstreamCounts::default();
        };
        let (open, in_use) = {
            let set = p.lock();
            let live = set.open.iter().filter(|l| !l.is_dead());
            let (mut open, mut busy) = (0, 0);
            for l in live {
                open += 1;
                busy += usize::from(l.inflight() > 0);
            }
            (open, busy)
        };
        UpstreamCounts {
            open,
            idle: open - in_use,
            in_use,
            max: p.max_upstream(),
            dedicated_open: p.dedicated.open(),
            dedicated_in_use: p.dedicated.in_use(),
            dedicated_max: p.dedicated.max(),
        }
    }

    fn down_since(&self) -> Option<(Instant, String)> {
        self.0.upgrade()?.health.down_since()
    }

    fn sample_server(&self) -> BoxFuture<'_, Result<ServerLoad, String>> {
        Box::pin(async move {
            let p = self.0.upgrade().ok_or("pool was replaced")?;
            sample(&p).await
        })
    }
}

/// `INFO clients` and `CONFIG GET maxclients` on one of the pool's own dedicated connections
/// (it counts: it is one of the proxy's).
async fn sample(p: &RedisPool) -> Result<ServerLoad, String> {
    // A dedicated connection, only if one is free now: sampling must not add one.
    let mut dedicated = p
        .dedicated
        .try_acquire()
        .await
        .ok_or("every dedicated connection is busy")?
        .map_err(|e| e.to_string())?;
    let conn = &mut *dedicated.conn;
    conn.write_all(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nmaxclients\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let info = conn.read_value().await.map_err(|e| e.to_string())?;
    let config = conn.read_value().await.map_err(|e| e.to_string())?;
    let text = info
        .as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .ok_or_else(|| format!("INFO clients answered {info:?}"))?;
    let connected =
        info_field(&text, "connected_clients").ok_or("INFO clients has no connected_clients")?;
    // CONFIG may be forbidden by an ACL; the count alone is still worth showing.
    let max = match &config {
        Value::Error(_) => None,
        v => map_get(v, b"maxclients")
            .and_then(Value::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()),
    };
    Ok(ServerLoad { connected, max })
}

fn info_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}
