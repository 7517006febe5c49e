use std::sync::Arc;
use std::time::Duration;

use super::sweeper::{self, next_level};
use super::*;
use crate::config::Config;

fn pool_cfg(extra: &str) -> PoolConfig {
    let toml = format!(
        "[[pool]]\nname = \"p\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:1\"\n{extra}\n"
    );
    Config::from_toml(&toml).unwrap().pools.remove(0)
}

fn peer(id: u64) -> Peer {
    Peer {
        id,
        addr: "10.0.0.1:5000".into(),
        local: "127.0.0.1:6380".into(),
        pid: None,
    }
}

#[test]
fn a_handle_registers_and_removes_itself_and_keeps_its_counts() {
    let reg = Registry::new();
    let pool = reg.pool(&pool_cfg(""));
    let h = reg.register(&pool, Protocol::Redis, &peer(7), "default");
    h.received(3, 100);
    h.sent(40);
    h.statement_command(b"set", 2);
    let row = &reg.client_rows(false)[0];
    assert_eq!((row.id, row.commands, row.bytes_in), (7, 3, 100));
    assert_eq!(row.last_statement, "SET (2 args)");
    drop(h);
    assert!(reg.sessions().is_empty());
    let stats = &reg.stats_rows()[0];
    assert_eq!(
        (stats.commands, stats.bytes_in, stats.bytes_out),
        (3, 100, 40)
    );
}

#[test]
fn an_idle_transaction_is_leaked_then_closed_but_a_subscriber_never() {
    let reg = Registry::new();
    let pool = reg.pool(&pool_cfg(
        "leak_threshold = \"0s\"\nidle_in_transaction_timeout = \"1ms\"",
    ));
    let tx = reg.register(&pool, Protocol::Redis, &peer(1), "u");
    tx.upstream_acquired();
    tx.pin("multi", true);
    tx.set_state(SessionState::InTransaction);
    let sub = reg.register(&pool, Protocol::Redis, &peer(2), "u");
    sub.upstream_acquired();
    sub.pin("subscription", false);
    sub.set_state(SessionState::Pinned);
    std::thread::sleep(Duration::from_millis(5));
    sweeper::sweep_sessions(&reg);
    let leaks = reg.client_rows(true);
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].pin_reason.as_deref(), Some("multi"));
    let why = tx.close_reason().expect("closed after the timeout");
    assert_eq!(
        why.message,
        "idle in multi for 1ms (idle_in_transaction_timeout)"
    );
    assert!(sub.close_reason().is_none());
    tx.touch();
    assert!(reg.client_rows(true).is_empty(), "activity lifts the mark");
}

#[test]
fn client_idle_timeout_spares_sessions_that_hold_an_upstream() {
    let reg = Registry::new();
    let pool = reg.pool(&pool_cfg("client_idle_timeout = \"1ms\""));
    let idle = reg.register(&pool, Protocol::Redis, &peer(1), "u");
    let sub = reg.register(&pool, Protocol::Redis, &peer(2), "u");
    sub.upstream_acquired();
    sub.pin("subscription", false);
    sub.set_state(SessionState::Pinned);
    std::thread::sleep(Duration::from_millis(5));
    sweeper::sweep_sessions(&reg);
    assert_eq!(
        idle.close_reason().map(|r| r.message).as_deref(),
        Some("idle for 1ms (client_idle_timeout)")
    );
    assert!(sub.close_reason().is_none());
}

#[test]
fn kill_names_the_client_and_fails_for_unknown_ids() {
    let reg = Registry::new();
    let pool = reg.pool(&pool_cfg(""));
    let h = reg.register(&pool, Protocol::Redis, &peer(17), "u");
    assert!(reg.kill(99).unwrap_err().contains("99"));
    reg.kill(17).unwrap();
    assert_eq!(
        h.close_reason().unwrap().message,
        "closed by operator (kill 17)"
    );
}

#[test]
fn utilization_alerts_rise_at_thresholds_and_fall_with_hysteresis() {
    use Level::*;
    assert_eq!(next_level(Normal, 0.79, 0.8, 0.95), Normal);
    assert_eq!(next_level(Normal, 0.8, 0.8, 0.95), Warn);
    assert_eq!(next_level(Warn, 0.78, 0.8, 0.95), Warn, "inside the band");
    assert_eq!(next_level(Warn, 0.74, 0.8, 0.95), Normal);
    assert_eq!(next_level(Normal, 1.0, 0.8, 0.95), Critical);
    assert_eq!(next_level(Critical, 0.92, 0.8, 0.95), Critical);
    assert_eq!(next_level(Critical, 0.85, 0.8, 0.95), Warn);
    assert_eq!(next_level(Critical, 0.1, 0.8, 0.95), Normal);
}

#[test]
fn sql_is_shown_only_through_the_masker() {
    let reg = Registry::new();
    let pool = reg.pool(&pool_cfg(""));
    let h = reg.register(&pool, Protocol::Mysql, &peer(1), "app");
    h.statement_sql(b"SELECT * FROM t WHERE pw = 'secret'");
    assert_eq!(reg.client_rows(false)[0].last_statement, "<sql, 35 bytes>");
    reg.set_sql_masker(|sql, max| {
        String::from_utf8_lossy(&sql[..sql.len().min(max)]).replace("'secret'", "?")
    });
    assert_eq!(
        reg.client_rows(false)[0].last_statement,
        "SELECT * FROM t WHERE pw = ?"
    );
    let _ = Arc::strong_count(&pool);
}
