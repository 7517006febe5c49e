//! Randomized isolation: 24 clients (PyMySQL, mysqlclient, mysql-connector-python) on four
//! upstream connections run random sequences of state-changing statements and check their own
//! session after every step (`tests/e2e/mysql_isolation.py`). Zero leaks, and the upstream never
//! sees more than `max_upstream` connections from the proxy. The seed is printed on failure;
//! `TIDEPOOL_SEED=<seed>` replays a run.

#[path = "support/harness.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::proxy::TestProxy;
use support::{MYSQL_USER, MariaDb, assert_success, most_during, repo_path, run_python_with};

const MAX_UPSTREAM: usize = 4;
const CLIENTS: usize = 24;
const STEPS: usize = 150;

/// A MySQL pool named `iso` in front of `upstream`; `extra` holds more pool keys.
fn mysql_pool_toml(upstream: SocketAddr, extra: &str) -> String {
    support::proxy::mysql_pool_toml("iso", upstream, extra)
}

#[test]
fn random_state_changing_sequences_never_leak_between_clients() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_pool_toml(
        db.addr(),
        &format!("max_upstream = {MAX_UPSTREAM}\nacquire_timeout = \"30s\""),
    ));
    let port = proxy.addr("iso").port().to_string();

    let seed = std::env::var("TIDEPOOL_SEED").unwrap_or_default();
    let envs: Vec<(&str, &str)> = if seed.is_empty() {
        vec![]
    } else {
        vec![("TIDEPOOL_SEED", seed.as_str())]
    };
    // Sample the upstream's processlist while the clients run.
    let (most, out) = most_during(
        Duration::from_millis(50),
        move || db.processlist_count(MYSQL_USER),
        || {
            run_python_with(
                &repo_path("tests/e2e/mysql_isolation.py"),
                &[
                    "127.0.0.1",
                    &port,
                    &MAX_UPSTREAM.to_string(),
                    &CLIENTS.to_string(),
                    &STEPS.to_string(),
                ],
                &envs,
                Duration::from_secs(180),
            )
        },
    );
    let Some(out) = out else { return };
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("ok seed="))
        .unwrap_or_default();
    assert!(!summary.is_empty(), "no summary line:\n{stdout}");
    eprintln!("{summary}");
    assert!(
        most >= 1,
        "the sampler saw the proxy's upstream connections"
    );
    assert!(
        most <= MAX_UPSTREAM,
        "MariaDB saw {most} connections from the proxy; max_upstream is {MAX_UPSTREAM}"
    );
}
