//! The MySQL drivers (PyMySQL, mysqlclient, mysql-connector-python, SQLAlchemy) through the
//! proxy against a real mariadbd: the MySQL engine's acceptance scenarios
//! (`tests/e2e/mysql_clients.py`).

#[path = "support/harness.rs"]
mod support;

use std::time::Duration;

use support::proxy::TestProxy;
use support::{
    MYSQL_USER, MariaDb, MariaDbOptions, assert_success, most_during, repo_path, run_python_with,
};

fn mysql_toml(upstream: std::net::SocketAddr, extra: &str) -> String {
    support::proxy::mysql_pool_toml("db", upstream, extra)
}

/// Runs a scenario against `port`; `None` when Python tests are skipped (plain `cargo test`).
fn scenario(port: u16, name: &str, args: &[&str]) -> Option<std::process::Output> {
    let script = repo_path("tests/e2e/mysql_clients.py");
    let port = port.to_string();
    let mut all = vec![name, "127.0.0.1", port.as_str()];
    all.extend_from_slice(args);
    run_python_with(&script, &all, &[], Duration::from_secs(300))
}

fn passes(port: u16, name: &str, args: &[&str]) -> bool {
    match scenario(port, name, args) {
        Some(out) => {
            assert_success(&out);
            true
        }
        None => false,
    }
}

/// Samples the upstream's count of the app user's connections while `work` runs.
fn most_upstream_connections_during(db: &'static MariaDb, work: impl FnOnce()) -> usize {
    most_during(
        Duration::from_millis(50),
        move || db.processlist_count(MYSQL_USER),
        work,
    )
    .0
}

/// A MariaDB of the test's own with `max_connections = 30` (the two load tests would
/// otherwise exhaust each other's).
fn small_mariadb() -> &'static MariaDb {
    Box::leak(Box::new(MariaDb::start_with(
        MariaDbOptions::default().max_connections(30),
    )))
}

#[test]
fn three_hundred_sqlalchemy_clients_share_ten_upstreams_without_errors() {
    let db = small_mariadb();
    let proxy = TestProxy::start(&mysql_toml(
        db.addr(),
        "max_upstream = 10\nacquire_timeout = \"60s\"",
    ));
    let port = proxy.addr("db").port();
    if !passes(port, "setup", &[]) {
        return;
    }
    let most =
        most_upstream_connections_during(db, || assert!(passes(port, "load", &["300", "20"])));
    assert!(
        most <= 10,
        "the upstream saw {most} connections from the proxy; max_upstream is 10"
    );
    assert!(most >= 1, "the sampler saw the proxy's connections");
}

#[test]
fn the_same_load_straight_at_mariadb_hits_too_many_connections() {
    let db = small_mariadb();
    let proxy = TestProxy::start(&mysql_toml(db.addr(), "max_upstream = 10"));
    if !passes(proxy.addr("db").port(), "setup", &[]) {
        return;
    }
    let out = scenario(db.port(), "load", &["300", "2"]).expect("python available");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "direct load should hit 1040:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("too-many-connections"), "{stdout}");
}

#[test]
fn thirty_idle_sqlalchemy_engines_pin_nothing() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(db.addr(), "max_upstream = 5"));
    let port = proxy.addr("db").port();
    let mariadb_port = db.port().to_string();
    let _ = passes(port, "setup", &[]) && passes(port, "idle_engines", &["30", &mariadb_port, "5"]);
}

#[test]
fn sixty_clients_on_five_upstreams_keep_their_own_session_state() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(
        db.addr(),
        "max_upstream = 5\nacquire_timeout = \"60s\"",
    ));
    let port = proxy.addr("db").port();
    let _ = passes(port, "setup", &[])
        && passes(port, "own_state", &["60", "15"])
        && passes(port, "user_variables", &["30"]);
}

#[test]
fn temporary_tables_locks_and_uncommitted_rows_stay_with_their_client() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(db.addr(), "max_upstream = 3"));
    let port = proxy.addr("db").port();
    let _ = passes(port, "setup", &[]) && passes(port, "temp_tables_locks_visibility", &[]);
}

#[test]
fn change_user_starts_a_fresh_session_as_another_configured_user() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(db.addr(), "max_upstream = 2"));
    let port = proxy.addr("db").port();
    let _ = passes(port, "setup", &[]) && passes(port, "change_user", &[]);
}

#[test]
fn prepared_statements_do_not_pin_clients_to_an_upstream() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(
        db.addr(),
        "max_upstream = 2\nacquire_timeout = \"2s\"\nmax_prepared_statements = 2",
    ));
    let port = proxy.addr("db").port();
    let _ = passes(port, "setup", &[]) && passes(port, "prepared_multiplexed", &["12", "15"]);
}

#[test]
fn row_count_and_found_rows_are_each_clients_own() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(db.addr(), "max_upstream = 3"));
    let port = proxy.addr("db").port();
    let _ = passes(port, "setup", &[]) && passes(port, "counters", &["20"]);
}

#[test]
fn last_insert_id_is_each_clients_own_under_forty_concurrent_inserters() {
    let db = MariaDb::shared();
    let proxy = TestProxy::start(&mysql_toml(
        db.addr(),
        "max_upstream = 4\nacquire_timeout = \"60s\"",
    ));
    let port = proxy.addr("db").port();
    let _ = passes(port, "setup", &[]) && passes(port, "last_insert_id", &["40", "10"]);
}
