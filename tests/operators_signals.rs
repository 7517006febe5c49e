//! The signal paths of a real `tidepool run` process: SIGHUP reloads (live size changes,
//! invalid files refused), SIGTERM drains (an open transaction may still commit).

#[path = "support/harness.rs"]
mod support;

use support::proxy::ProxyProcess;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::proxy::{RespClient, text};
use support::{RedisServer, TempDir, free_port, signal, wait_for};

/// A `tidepool run` child, killed if the test ends without stopping it.
struct Running {
    child: ProxyProcess,
    socket: PathBuf,
    addr: std::net::SocketAddr,
    config: PathBuf,
    _dir: TempDir,
}

fn config_text(socket: &Path, port: u16, redis: &RedisServer, max_upstream: &str) -> String {
    format!(
        "[admin]\nsocket = \"{}\"\n[log]\nlevel = \"warn\"\n[drain]\ntimeout = \"10s\"\n[[pool]]\nname = \"redis\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\nmax_upstream = {max_upstream}\n",
        socket.display(),
        redis.addr()
    )
}

fn run(redis: &RedisServer) -> Running {
    let dir = TempDir::new("signals");
    let socket = dir.path().join("admin.sock");
    let config = dir.path().join("proxy.toml");
    let port = free_port();
    std::fs::write(&config, config_text(&socket, port, redis, "2")).unwrap();
    let child = ProxyProcess::spawn(&config, &dir.path().join("proxy.log"));
    let running = Running {
        child,
        socket,
        addr: ([127, 0, 0, 1], port).into(),
        config,
        _dir: dir,
    };
    wait_for(
        "the admin socket to answer",
        Duration::from_secs(10),
        || admin_call(&running.socket, "show version").is_ok(),
    );
    running
}

fn admin_call(socket: &Path, command: &str) -> Result<Json, String> {
    let words: Vec<String> = command.split_whitespace().map(String::from).collect();
    let (out, _) = tidepool::admin::client::call(socket, &words, true)?;
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

fn max_upstream(r: &Running) -> u64 {
    admin_call(&r.socket, "show pools").unwrap()["pools"][0]["upstreams"]["max"]
        .as_u64()
        .unwrap()
}

#[test]
fn sighup_applies_a_new_max_upstream_to_connected_clients_and_refuses_an_invalid_file() {
    let redis = RedisServer::start();
    let r = run(&redis);
    let mut c = RespClient::connect(r.addr);
    assert_eq!(text(&c.call(&["SET", "hup", "1"])), "OK");
    assert_eq!(max_upstream(&r), 2);

    std::fs::write(
        &r.config,
        config_text(&r.socket, r.addr.port(), &redis, "5"),
    )
    .unwrap();
    signal(&r.child.id().to_string(), "HUP");
    wait_for("max_upstream 5 to apply", Duration::from_secs(5), || {
        max_upstream(&r) == 5
    });
    assert_eq!(
        text(&c.call(&["INCR", "hup"])),
        "2",
        "the client kept working"
    );

    std::fs::write(
        &r.config,
        config_text(&r.socket, r.addr.port(), &redis, "0"),
    )
    .unwrap();
    let refused = admin_call(&r.socket, "reload").unwrap();
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("pool[0].max_upstream must be >= 1"),
        "{refused}"
    );
    assert_eq!(max_upstream(&r), 5, "the old config keeps running");
    assert_eq!(text(&c.call(&["INCR", "hup"])), "3");
    let stats = admin_call(&r.socket, "show stats").unwrap();
    assert!(stats["stats"].is_array());
}

#[test]
fn sigterm_lets_an_open_transaction_commit_within_the_drain_timeout() {
    let redis = RedisServer::start();
    let mut r = run(&redis);
    let mut tx = RespClient::connect(r.addr);
    assert_eq!(text(&tx.call(&["MULTI"])), "OK");
    assert_eq!(text(&tx.call(&["INCR", "drained"])), "QUEUED");
    let mut idle = RespClient::connect(r.addr);
    assert_eq!(text(&idle.call(&["PING"])), "PONG");

    let sent = Instant::now();
    signal(&r.child.id().to_string(), "TERM");
    assert!(idle.read().is_err(), "an idle client is closed at once");
    assert_eq!(text(&tx.call(&["INCR", "drained"])), "QUEUED");
    assert_eq!(
        format!("{:?}", tx.call(&["EXEC"])),
        "Array([Integer(1), Integer(2)])"
    );
    assert!(tx.read().is_err(), "then that client is closed too");
    let status = loop {
        if let Some(s) = r.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "exits within the drain timeout"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status}");
    assert!(!r.socket.exists(), "the admin socket is removed");
}
