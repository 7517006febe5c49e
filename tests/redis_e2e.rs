//! redis-py 8 (RESP2 and RESP3) through the proxy against a real redis-server: the Redis
//! engine's acceptance scenarios (`tests/e2e/redis_clients.py`).

#[path = "support/harness.rs"]
mod support;

use std::time::Duration;

use support::proxy::{TestProxy, redis_pool_toml};
use support::{
    RedisServer, Reply, assert_success, most_during, redis_command, repo_path, run_python,
};

const MAX_UPSTREAM: usize = 4;
const MAX_PINNED: usize = 8;

fn setup() -> (RedisServer, TestProxy) {
    let redis = RedisServer::start();
    let proxy = TestProxy::start(&redis_pool_toml(
        redis.addr(),
        &format!(
            "max_upstream = {MAX_UPSTREAM}\nmax_pinned = {MAX_PINNED}\nacquire_timeout = \"10s\""
        ),
    ));
    (redis, proxy)
}

/// Runs a scenario; false when Python tests are skipped (plain `cargo test`).
fn scenario(proxy: &TestProxy, name: &str, protocol: &str) -> bool {
    let addr = proxy.addr("redis");
    let script = repo_path("tests/e2e/redis_clients.py");
    let port = addr.port().to_string();
    match run_python(&script, &[name, "127.0.0.1", &port, protocol]) {
        Some(out) => {
            assert_success(&out);
            true
        }
        None => false,
    }
}

#[test]
fn two_hundred_mixed_protocol_clients_share_a_bounded_upstream() {
    let (redis, proxy) = setup();
    // Sample the upstream's view while the load runs: connections from the proxy are named.
    let addr = redis.addr();
    let proxy_connections = move || match redis_command(addr, None, &["CLIENT", "LIST"]) {
        Ok(Reply::Bulk(Some(text))) => String::from_utf8_lossy(&text)
            .matches("name=tidepool-")
            .count(),
        other => panic!("CLIENT LIST answered {other:?}"),
    };
    let (most, ran) = most_during(Duration::from_millis(20), proxy_connections, || {
        scenario(&proxy, "concurrency", "3")
    });
    if !ran {
        return;
    }
    assert!(
        most >= 1,
        "the sampler saw the proxy's upstream connections"
    );
    assert!(
        most <= MAX_UPSTREAM + MAX_PINNED,
        "upstream saw {most} proxy connections; the bound is {MAX_UPSTREAM} + {MAX_PINNED}"
    );
}

#[test]
fn transactions_are_atomic_and_watch_counters_exact() {
    let (_redis, proxy) = setup();
    let _ = scenario(&proxy, "transactions", "3") && scenario(&proxy, "transactions", "2");
}

#[test]
fn a_blocked_client_does_not_stall_fifty_others() {
    let (_redis, proxy) = setup();
    let _ = scenario(&proxy, "blocking", "3") && scenario(&proxy, "blocking", "2");
}

#[test]
fn pubsub_round_trip_in_both_protocols() {
    let (_redis, proxy) = setup();
    let _ = scenario(&proxy, "pubsub", "3") && scenario(&proxy, "pubsub", "2");
}

#[test]
fn select_keeps_databases_apart() {
    let (_redis, proxy) = setup();
    let _ = scenario(&proxy, "select", "3") && scenario(&proxy, "select", "2");
}

#[test]
fn client_names_are_per_client() {
    let (_redis, proxy) = setup();
    let _ = scenario(&proxy, "setname", "3") && scenario(&proxy, "setname", "2");
}

#[test]
fn refused_and_unknown_commands_get_errors_not_disconnects() {
    let (_redis, proxy) = setup();
    let _ = scenario(&proxy, "refusals", "3") && scenario(&proxy, "refusals", "2");
}
