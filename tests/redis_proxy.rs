//! The Redis engine against a real redis-server, at the byte level: faults, limits,
//! authentication, malformed input, and shutdown.

#[path = "support/harness.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::RedisServer;
use support::proxy::{RespClient, TestProxy, redis_pool_toml, text};
use tidepool::redis::resp::Value;
use tidepool::server::StopKind;

fn proxy_for(redis: &RedisServer, extra: &str) -> TestProxy {
    TestProxy::start(&redis_pool_toml(redis.addr(), extra))
}

#[test]
fn upstream_killed_and_restarted_under_load_errors_fast_then_recovers() {
    let redis = RedisServer::start();
    let acquire_timeout = Duration::from_secs(2);
    let proxy = proxy_for(
        &redis,
        "max_upstream = 2\nacquire_timeout = \"2s\"\nconnect_timeout = \"1s\"",
    );
    let addr = proxy.addr("redis");
    // (started, took, ok) for every command of every client.
    let log: Arc<Mutex<Vec<(Instant, Duration, bool)>>> = Arc::default();
    let t0 = Instant::now();
    let run_for = Duration::from_secs(7);
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut c = RespClient::connect(addr);
                let key = format!("load:{i}");
                while t0.elapsed() < run_for {
                    let started = Instant::now();
                    let reply = c.call(&["INCR", &key]);
                    let ok = matches!(reply, Value::Integer(_));
                    if !ok {
                        assert!(
                            text(&reply).starts_with("-ERR tidepool: "),
                            "error names the proxy: {}",
                            text(&reply)
                        );
                    }
                    log.lock().unwrap().push((started, started.elapsed(), ok));
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    redis.kill();
    std::thread::sleep(Duration::from_secs(2));
    redis.restart();
    let back = Instant::now();
    for c in clients {
        c.join().expect("client thread");
    }
    let log = log.lock().unwrap();
    let during_outage = log
        .iter()
        .filter(|(s, _, _)| *s > killed && *s < back)
        .collect::<Vec<_>>();
    assert!(
        !during_outage.is_empty() && during_outage.iter().all(|(_, _, ok)| !ok),
        "commands during the outage get errors"
    );
    let slowest = log.iter().map(|(_, took, _)| *took).max().unwrap();
    assert!(
        slowest < acquire_timeout,
        "no command waited past acquire_timeout (slowest {slowest:?})"
    );
    let late = log
        .iter()
        .filter(|(s, _, _)| *s > back + Duration::from_secs(2))
        .collect::<Vec<_>>();
    assert!(!late.is_empty(), "load continued after recovery");
    assert!(
        late.iter().all(|(_, _, ok)| *ok),
        "every command 2 s after the upstream's return succeeds"
    );
}

#[test]
fn malformed_input_closes_that_client_with_a_reason_and_no_one_else() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "");
    let mut good = RespClient::connect(proxy.addr("redis"));
    assert_eq!(text(&good.call(&["SET", "k", "v"])), "OK");
    let mut bad = RespClient::connect(proxy.addr("redis"));
    bad.send_raw(b"*2\r\n$3\r\nGET\r\n$-7\r\n");
    let reply = bad.read().expect("an error before the close");
    assert!(
        text(&reply).starts_with("-ERR Protocol error: "),
        "{}",
        text(&reply)
    );
    assert!(bad.read().is_err(), "then the connection is closed");
    assert_eq!(text(&good.call(&["GET", "k"])), "v");
}

#[test]
fn an_oversized_bulk_length_is_refused_before_it_is_received() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "max_command_bytes = 1048576");
    let mut c = RespClient::connect(proxy.addr("redis"));
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    let reply = c.read().expect("an error at once, without the 2 MB");
    assert!(text(&reply).contains("exceeds"), "{}", text(&reply));
}

#[test]
fn clients_over_max_clients_are_told_the_limit() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "max_clients = 2");
    let mut a = RespClient::connect(proxy.addr("redis"));
    let mut b = RespClient::connect(proxy.addr("redis"));
    assert_eq!(text(&a.call(&["PING"])), "PONG");
    assert_eq!(text(&b.call(&["PING"])), "PONG");
    let mut c = RespClient::connect(proxy.addr("redis"));
    let reply = c.read().expect("a refusal");
    assert_eq!(
        text(&reply),
        "-ERR tidepool: max number of clients reached (pool 'redis' max_clients = 2)"
    );
    drop(a);
    support::wait_for("a slot to free up", Duration::from_secs(5), || {
        let mut d = RespClient::connect(proxy.addr("redis"));
        d.send(&["PING"]);
        d.read().map(|v| text(&v) == "PONG").unwrap_or(false)
    });
}

#[test]
fn dedicated_connections_are_bounded_and_the_error_names_the_limit() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "max_pinned = 1\nacquire_timeout = \"300ms\"");
    let mut holder = RespClient::connect(proxy.addr("redis"));
    assert_eq!(text(&holder.call(&["WATCH", "k"])), "OK");
    let mut waiter = RespClient::connect(proxy.addr("redis"));
    let reply = text(&waiter.call(&["BLPOP", "q", "1"]));
    let expected =
        "-ERR tidepool: pool 'redis': all 1 dedicated connections (max_pinned) are in use; waited ";
    assert!(
        reply.starts_with(expected) && reply.ends_with("(acquire_timeout)"),
        "{reply}"
    );
    assert_eq!(
        text(&waiter.call(&["SET", "a", "1"])),
        "OK",
        "the refused client carries on"
    );
    assert_eq!(text(&holder.call(&["UNWATCH"])), "OK");
    assert_eq!(
        text(&waiter.call(&["BLPOP", "q", "0.1"])),
        "nil",
        "the connection came back"
    );
}

#[test]
fn a_client_that_leaves_mid_transaction_does_not_leak_it() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "max_pinned = 1");
    {
        let mut a = RespClient::connect(proxy.addr("redis"));
        assert_eq!(text(&a.call(&["MULTI"])), "OK");
        assert_eq!(text(&a.call(&["SET", "tx:k", "leaked"])), "QUEUED");
    }
    let mut b = RespClient::connect(proxy.addr("redis"));
    assert_eq!(
        text(&b.call(&["MULTI"])),
        "OK",
        "not nested in the first client's MULTI"
    );
    assert_eq!(text(&b.call(&["GET", "tx:k"])), "QUEUED");
    let exec = b.call(&["EXEC"]);
    assert_eq!(
        format!("{exec:?}"),
        "Array([Null])",
        "the abandoned SET never ran"
    );
}

#[test]
fn a_password_protected_pool_authenticates_clients_itself() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let proxy = proxy_for(&redis, "password = \"s3cret\"");
    let mut c = RespClient::connect(proxy.addr("redis"));
    assert_eq!(
        text(&c.call(&["GET", "k"])),
        "-NOAUTH Authentication required."
    );
    assert!(text(&c.call(&["AUTH", "wrong"])).starts_with("-WRONGPASS"));
    assert_eq!(text(&c.call(&["AUTH", "s3cret"])), "OK");
    assert_eq!(text(&c.call(&["SET", "k", "v"])), "OK");
    let mut d = RespClient::connect(proxy.addr("redis"));
    let hello = d.call(&["HELLO", "3", "AUTH", "default", "s3cret"]);
    assert!(
        matches!(hello, Value::Map(_)),
        "HELLO 3 with AUTH answers a RESP3 map: {hello:?}"
    );
    assert_eq!(text(&d.call(&["GET", "k"])), "v");
}

#[test]
fn inline_commands_work_like_redis_cli_and_telnet() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "");
    let mut c = RespClient::connect(proxy.addr("redis"));
    c.send_raw(b"SET greeting \"hello world\"\r\nGET greeting\r\nPING\r\n");
    assert_eq!(text(&c.read().unwrap()), "OK");
    assert_eq!(text(&c.read().unwrap()), "hello world");
    assert_eq!(text(&c.read().unwrap()), "PONG");
}

#[test]
fn a_pipeline_mixing_proxied_and_local_answers_stays_in_order() {
    let redis = RedisServer::start();
    let proxy = proxy_for(&redis, "");
    let mut c = RespClient::connect(proxy.addr("redis"));
    let mut pipeline = Vec::new();
    for i in 0..200 {
        pipeline.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$4\r\nk{i:03}\r\n$4\r\nv{i:03}\r\n").as_bytes(),
        );
        pipeline.extend_from_slice(format!("*2\r\n$4\r\nPING\r\n$4\r\np{i:03}\r\n").as_bytes());
        pipeline.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$4\r\nk{i:03}\r\n").as_bytes());
    }
    c.send_raw(&pipeline);
    for i in 0..200 {
        assert_eq!(text(&c.read().unwrap()), "OK");
        assert_eq!(text(&c.read().unwrap()), format!("p{i:03}"));
        assert_eq!(text(&c.read().unwrap()), format!("v{i:03}"));
    }
}

#[test]
fn drain_lets_a_transaction_finish_then_closes_clients() {
    let redis = RedisServer::start();
    let mut proxy = proxy_for(&redis, "");
    let addr = proxy.addr("redis");
    let mut idle = RespClient::connect(addr);
    assert_eq!(text(&idle.call(&["PING"])), "PONG");
    let mut tx = RespClient::connect(addr);
    assert_eq!(text(&tx.call(&["MULTI"])), "OK");
    proxy.stop(StopKind::Drain);
    assert!(idle.read().is_err(), "an idle client is closed at once");
    assert_eq!(text(&tx.call(&["INCR", "drained"])), "QUEUED");
    assert_eq!(
        format!("{:?}", tx.call(&["EXEC"])),
        "Array([Integer(1)])",
        "the open transaction completes"
    );
    assert!(tx.read().is_err(), "then that client is closed too");
    assert!(
        proxy.wait_stopped(Duration::from_secs(10)),
        "the proxy stops once nothing is open"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "and accepts nobody new"
    );
}
