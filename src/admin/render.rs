//! Text rendering of admin responses: aligned tables for rows, plain lines for messages.

use std::time::Duration;

use super::proto::Response;
use crate::registry::{ClientRow, PoolRow, StatsRow, Summary, UpstreamRow};

pub fn text(r: &Response) -> String {
    match r {
        Response::Pools(rows) => pools(rows),
        Response::Clients(rows) | Response::Leaks(rows) => clients(rows),
        Response::Upstreams(rows) => upstreams(rows),
        Response::Stats(rows) => stats(rows),
        Response::Config(s) | Response::Help(s) | Response::Version(s) => {
            let mut s = s.clone();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        Response::Ok(s) => format!("ok: {s}\n"),
        Response::Error(s) => format!("error: {s}\n"),
    }
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn dur_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms / 100 * 100)).to_string()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn pools(rows: &[PoolRow]) -> String {
    let header = [
        "POOL",
        "PROTO",
        "LISTEN",
        "CLIENTS",
        "ACTIVE",
        "WAITING",
        "PINNED",
        "IN_TX",
        "LEAKED",
        "UP_OPEN",
        "UP_IDLE",
        "UP_USED",
        "UP_MAX",
        "DEDICATED",
        "LONGEST_WAIT",
        "HEALTH",
        "ALERT",
        "PAUSED",
    ];
    let rows = rows
        .iter()
        .map(|p| {
            let u = &p.upstreams;
            vec![
                p.name.clone(),
                p.protocol.clone(),
                p.listen.clone(),
                p.clients.to_string(),
                p.active.to_string(),
                p.waiting.to_string(),
                p.pinned.to_string(),
                p.in_transaction.to_string(),
                p.leaked.to_string(),
                u.open.to_string(),
                u.idle.to_string(),
                u.in_use.to_string(),
                u.max.to_string(),
                format!("{}/{}", u.dedicated_in_use, u.dedicated_max),
                dur_ms(p.longest_wait_ms),
                match &p.last_error {
                    Some(e) => format!("{} ({e})", p.health),
                    None => p.health.clone(),
                },
                format!("{:?}", p.alert).to_lowercase(),
                if p.paused { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(&header, rows)
}

fn clients(rows: &[ClientRow]) -> String {
    let header = [
        "ID", "POOL", "ADDR", "PID", "USER", "DB", "STATE", "PIN", "HELD", "IDLE", "LEAKED",
        "CMDS", "LAST", "PROCESS",
    ];
    let rows = rows
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.pool.clone(),
                c.addr.clone(),
                opt(c.pid),
                c.user.clone(),
                c.db.clone(),
                c.state.as_str().to_string(),
                opt(c.pin_reason.clone()),
                opt(c.upstream_held_ms.map(dur_ms)),
                dur_ms(c.idle_ms),
                if c.leaked { "LEAKED" } else { "" }.into(),
                c.commands.to_string(),
                c.last_statement.clone(),
                opt(c.cmdline.clone()),
            ]
        })
        .collect();
    table(&header, rows)
}

fn upstreams(rows: &[UpstreamRow]) -> String {
    let header = [
        "POOL",
        "UPSTREAM",
        "HEALTH",
        "OPEN",
        "IDLE",
        "IN_USE",
        "MAX",
        "DEDICATED",
        "SERVER_CONN",
        "SERVER_MAX",
        "HEADROOM",
        "SAMPLED",
        "LAST_ERROR",
    ];
    let rows = rows
        .iter()
        .map(|u| {
            let c = &u.counts;
            let headroom = match (u.server_connected, u.server_max) {
                (Some(n), Some(m)) => m.saturating_sub(n).to_string(),
                _ => "-".into(),
            };
            vec![
                u.pool.clone(),
                u.upstream.clone(),
                match u.down_for_ms {
                    Some(ms) => format!("down {}", dur_ms(ms)),
                    None => u.health.clone(),
                },
                c.open.to_string(),
                c.idle.to_string(),
                c.in_use.to_string(),
                c.max.to_string(),
                format!(
                    "{}/{} ({} open)",
                    c.dedicated_in_use, c.dedicated_max, c.dedicated_open
                ),
                opt(u.server_connected),
                opt(u.server_max),
                headroom,
                opt(u.sampled_ago_ms.map(|ms| format!("{} ago", dur_ms(ms)))),
                u.last_error
                    .clone()
                    .or_else(|| u.sample_error.clone().map(|e| format!("sample: {e}")))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&header, rows)
}

fn summary(s: &Summary) -> String {
    if s.count == 0 {
        return "-".into();
    }
    format!("{}us/{}us", s.avg_us, s.p99_us)
}

fn stats(rows: &[StatsRow]) -> String {
    let header = [
        "POOL",
        "SINCE",
        "CLIENTS",
        "COMMANDS",
        "BYTES_IN",
        "BYTES_OUT",
        "LATENCY_AVG/P99",
        "ACQUIRES",
        "ACQUIRE_AVG/P99",
        "LEAKS",
        "ERRORS",
    ];
    let rows = rows
        .iter()
        .map(|s| {
            let errors: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
            vec![
                s.pool.clone(),
                humantime::format_duration(Duration::from_secs(s.since_s)).to_string(),
                s.clients_accepted.to_string(),
                s.commands.to_string(),
                s.bytes_in.to_string(),
                s.bytes_out.to_string(),
                summary(&s.latency),
                s.acquire_wait.count.to_string(),
                summary(&s.acquire_wait),
                s.leaks.to_string(),
                if errors.is_empty() {
                    "-".into()
                } else {
                    errors.join(",")
                },
            ]
        })
        .collect();
    table(&header, rows)
}
