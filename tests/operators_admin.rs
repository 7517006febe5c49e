//! The operators' view against a real redis-server: the admin socket (leaks, pin reasons,
//! kill, pause/resume, upstream headroom) and the `tidepool admin` client.

#[path = "support/harness.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::proxy::{RespClient, TestProxy, text};
use support::{RedisServer, TempDir, wait_for};
use tidepool::redis::resp::Value;

struct Setup {
    _dir: TempDir,
    socket: PathBuf,
    proxy: TestProxy,
    _redis: RedisServer,
}

fn setup(pool_extra: &str) -> Setup {
    let redis = RedisServer::start();
    let dir = TempDir::new("admin");
    let socket = dir.path().join("run/admin.sock");
    let toml = format!(
        "[admin]\nsocket = \"{}\"\n[log]\nlevel = \"warn\"\n[[pool]]\nname = \"redis\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\n{pool_extra}\n",
        socket.display(),
        redis.addr()
    );
    let proxy = TestProxy::start(&toml);
    Setup {
        _dir: dir,
        socket,
        proxy,
        _redis: redis,
    }
}

/// Runs an admin command with `--json` and returns the payload under its kind.
fn admin(socket: &Path, command: &str) -> Json {
    let words: Vec<String> = command.split_whitespace().map(String::from).collect();
    let (out, failed) = tidepool::admin::client::call(socket, &words, true)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    let v: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{command}: {e}: {out}"));
    assert!(!failed, "{command} failed: {out}");
    v.as_object()
        .and_then(|o| o.values().next().cloned())
        .unwrap_or_else(|| panic!("{command}: unexpected {out}"))
}

fn client_id(c: &mut RespClient) -> u64 {
    match c.call(&["CLIENT", "ID"]) {
        Value::Integer(n) => n as u64,
        other => panic!("CLIENT ID answered {other:?}"),
    }
}

fn row(rows: &Json, id: u64) -> Option<Json> {
    rows.as_array()?
        .iter()
        .find(|r| r["id"].as_u64() == Some(id))
        .cloned()
}

#[test]
fn an_idle_multi_is_reported_as_leaked_then_closed_and_its_commands_never_run() {
    let s = setup("leak_threshold = \"1s\"\nidle_in_transaction_timeout = \"3s\"");
    let mut c = RespClient::connect(s.proxy.addr("redis"));
    let id = client_id(&mut c);
    assert_eq!(text(&c.call(&["MULTI"])), "OK");
    assert_eq!(text(&c.call(&["SET", "leak:k", "v"])), "QUEUED");
    let idle_from = Instant::now();

    let mut leak = None;
    wait_for("the session in show leaks", Duration::from_secs(5), || {
        leak = row(&admin(&s.socket, "show leaks"), id);
        leak.is_some()
    });
    let seen_after = idle_from.elapsed();
    assert!(
        seen_after < Duration::from_secs(2),
        "listed within leak_threshold + 1 s (took {seen_after:?})"
    );
    let leak = leak.unwrap();
    assert_eq!(leak["pid"].as_u64(), Some(u64::from(std::process::id())));
    assert_eq!(leak["pin_reason"], "multi");
    assert_eq!(leak["state"], "in_transaction");
    assert_eq!(leak["last_statement"], "SET (2 args)");
    assert!(leak["cmdline"].as_str().is_some_and(|c| !c.is_empty()));

    let reply = c.read().expect("an error before the close");
    assert_eq!(
        text(&reply),
        "-ERR tidepool: idle in multi for 3s (idle_in_transaction_timeout)"
    );
    assert!(idle_from.elapsed() >= Duration::from_secs(3));
    assert!(c.read().is_err(), "then the connection is closed");

    let mut other = RespClient::connect(s.proxy.addr("redis"));
    assert_eq!(
        text(&other.call(&["GET", "leak:k"])),
        "nil",
        "the queued SET never ran"
    );
    let stats = admin(&s.socket, "show stats");
    assert_eq!(stats[0]["leaks"], 1);
    assert_eq!(stats[0]["errors"]["idle_in_transaction"], 1);
}

#[test]
fn show_clients_names_why_a_client_is_pinned_and_subscribers_are_not_leaks() {
    let s = setup("leak_threshold = \"100ms\"");
    let addr = s.proxy.addr("redis");
    let mut watcher = RespClient::connect(addr);
    let mut subscriber = RespClient::connect(addr);
    let mut plain = RespClient::connect(addr);
    let (w, sub, p) = (
        client_id(&mut watcher),
        client_id(&mut subscriber),
        client_id(&mut plain),
    );
    assert_eq!(text(&watcher.call(&["WATCH", "k"])), "OK");
    subscriber.call(&["SUBSCRIBE", "news"]);
    assert_eq!(text(&plain.call(&["SELECT", "3"])), "OK");

    let clients = admin(&s.socket, "show clients");
    let (w, sub, p) = (
        row(&clients, w).unwrap(),
        row(&clients, sub).unwrap(),
        row(&clients, p).unwrap(),
    );
    assert_eq!(
        (w["pin_reason"].as_str(), w["state"].as_str()),
        (Some("watch"), Some("pinned"))
    );
    assert_eq!(sub["pin_reason"], "subscription");
    assert!(sub["upstream_held_ms"].is_u64());
    assert_eq!(
        (p["pin_reason"].clone(), p["state"].as_str()),
        (Json::Null, Some("idle"))
    );
    assert_eq!(p["db"], "3");

    wait_for("the watch to be leaked", Duration::from_secs(3), || {
        row(&admin(&s.socket, "show leaks"), w["id"].as_u64().unwrap()).is_some()
    });
    let leaks = admin(&s.socket, "show leaks");
    assert_eq!(
        leaks.as_array().unwrap().len(),
        1,
        "the subscriber is not a leak: {leaks}"
    );
}

#[test]
fn kill_closes_a_session_and_tells_a_client_holding_state_why() {
    let s = setup("");
    let addr = s.proxy.addr("redis");
    let mut idle = RespClient::connect(addr);
    let mut watching = RespClient::connect(addr);
    let (i, w) = (client_id(&mut idle), client_id(&mut watching));
    assert_eq!(text(&watching.call(&["WATCH", "k"])), "OK");

    admin(&s.socket, &format!("kill {i}"));
    assert!(
        idle.read().is_err(),
        "an idle client is just closed, as Redis does"
    );
    admin(&s.socket, &format!("kill {w}"));
    assert_eq!(
        text(&watching.read().expect("the reason")),
        format!("-ERR tidepool: closed by operator (kill {w})")
    );
    assert!(watching.read().is_err());
    wait_for("both to leave the registry", Duration::from_secs(5), || {
        admin(&s.socket, "show clients")
            .as_array()
            .unwrap()
            .is_empty()
    });
    let (out, failed) =
        tidepool::admin::client::call(&s.socket, &["kill".into(), "999".into()], false).unwrap();
    assert!(failed && out == "error: no client with id 999\n", "{out}");
}

#[test]
fn pause_waits_for_an_open_transaction_holds_new_work_and_resume_releases_it() {
    let s = setup("acquire_timeout = \"20s\"");
    let addr = s.proxy.addr("redis");
    let mut tx = RespClient::connect(addr);
    assert_eq!(text(&tx.call(&["MULTI"])), "OK");
    assert_eq!(text(&tx.call(&["INCR", "paused:n"])), "QUEUED");
    let socket = s.socket.clone();
    let pause = std::thread::spawn(move || admin(&socket, "pause"));
    wait_for("the pool to be paused", Duration::from_secs(5), || {
        admin(&s.socket, "show pools")[0]["paused"] == true
    });
    assert!(
        !pause.is_finished(),
        "pause waits while a transaction is open"
    );
    assert_eq!(format!("{:?}", tx.call(&["EXEC"])), "Array([Integer(1)])");
    let said = pause.join().unwrap();
    assert!(said.as_str().unwrap().contains("no transaction"), "{said}");

    let mut held = RespClient::connect(addr);
    held.send(&["INCR", "paused:n"]);
    wait_for("the command to be held", Duration::from_secs(5), || {
        admin(&s.socket, "show pools")[0]["waiting"] == 1
    });
    held.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(held.read().is_err(), "no answer while paused");
    held.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    admin(&s.socket, "resume");
    assert_eq!(text(&held.read().expect("released by resume")), "2");
}

#[test]
fn the_socket_is_private_and_the_cli_renders_what_the_daemon_says() {
    let s = setup("");
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode {mode:o}");
    let mut c = RespClient::connect(s.proxy.addr("redis"));
    assert_eq!(text(&c.call(&["SET", "a", "1"])), "OK");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidepool"))
        .args(["admin", "--socket"])
        .arg(&s.socket)
        .args(["show", "pools"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header[..3], ["POOL", "PROTO", "LISTEN"], "{table}");
    assert!(lines.next().unwrap().starts_with("redis "), "{table}");

    let version = admin(&s.socket, "show version");
    assert_eq!(version, format!("tidepool {}", env!("CARGO_PKG_VERSION")));
    let config = admin(&s.socket, "show config");
    assert!(config.as_str().unwrap().contains("name = \"redis\""));
    wait_for(
        "the upstream's own count to be sampled",
        Duration::from_secs(5),
        || admin(&s.socket, "show upstreams")[0]["server_max"].is_u64(),
    );
    let up = &admin(&s.socket, "show upstreams")[0];
    assert!(up["server_connected"].as_u64().unwrap() >= 1, "{up}");
    assert_eq!(up["health"], "up");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidepool"))
        .args(["admin", "--socket"])
        .arg(&s.socket)
        .args(["show", "tables"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn kill_reaches_a_client_waiting_for_a_dedicated_connection() {
    let s = setup("max_pinned = 1\nacquire_timeout = \"30s\"");
    let addr = s.proxy.addr("redis");
    let mut holder = RespClient::connect(addr);
    assert_eq!(text(&holder.call(&["WATCH", "k"])), "OK");
    let mut waiter = RespClient::connect(addr);
    let id = client_id(&mut waiter);
    waiter.send(&["BLPOP", "q", "1"]);
    wait_for("the waiter to wait", Duration::from_secs(5), || {
        row(&admin(&s.socket, "show clients"), id).is_some_and(|r| r["state"] == "waiting")
    });
    let started = Instant::now();
    admin(&s.socket, &format!("kill {id}"));
    let reply = text(&waiter.read().expect("the waiting command is answered"));
    assert_eq!(
        reply,
        format!("-ERR tidepool: closed by operator (kill {id})")
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "at once, not after acquire_timeout"
    );
    assert!(waiter.read().is_err(), "then the connection is closed");
}
