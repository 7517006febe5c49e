//! Edge cases of the MySQL engine against a real mariadbd, with the real drivers
//! (`tests/e2e/mysql_edges.py`): multiple result sets, a 20 MiB blob, `LOAD DATA LOCAL
//! INFILE`, server-side prepared statements, `caching_sha2_password`, login errors, every
//! driver, a client killed mid-transaction, pool exhaustion, the upstream down and back,
//! garbage on the port, and `max_clients`.

#[path = "support/harness.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::proxy::TestProxy;
use support::{
    MYSQL_DATABASE, MYSQL_PASSWORD, MYSQL_USER, MariaDb, MariaDbOptions, assert_success, mysql_cli,
    python, repo_path, run_python_with,
};

const POOL: &str = "edgepool";

/// One MariaDB for the tests that do not break it: big packets and LOCAL INFILE allowed.
fn mariadb() -> &'static MariaDb {
    static DB: OnceLock<MariaDb> = OnceLock::new();
    DB.get_or_init(|| {
        MariaDb::start_with(
            MariaDbOptions::default()
                .arg("--max-allowed-packet=64M")
                .arg("--local-infile=1"),
        )
    })
}

/// A MySQL pool named `edgepool` in front of `upstream`; `extra` holds more pool keys.
fn mysql_pool_toml(upstream: SocketAddr, extra: &str) -> String {
    support::proxy::mysql_pool_toml(POOL, upstream, extra)
}

fn proxy_for(db: &MariaDb, extra: &str) -> TestProxy {
    TestProxy::start(&mysql_pool_toml(db.addr(), extra))
}

/// Runs one scenario of `mysql_edges.py` against the proxy; false when Python tests are
/// skipped (plain `cargo test`). Panics with the script's output if it fails.
fn scenario(proxy: &TestProxy, name: &str, args: &[&str]) -> bool {
    let port = proxy.addr(POOL).port().to_string();
    let mut all = vec![name, "127.0.0.1", port.as_str()];
    all.extend_from_slice(args);
    let script = repo_path("tests/e2e/mysql_edges.py");
    match run_python_with(&script, &all, &[], Duration::from_secs(180)) {
        Some(out) => {
            assert_success(&out);
            true
        }
        None => false,
    }
}

#[test]
fn stored_procedure_and_multi_statements_return_every_result_set() {
    let proxy = proxy_for(mariadb(), "");
    scenario(&proxy, "multi_results", &[]);
}

#[test]
fn twenty_mib_blob_round_trips() {
    let proxy = proxy_for(mariadb(), "");
    scenario(&proxy, "big_blob", &[]);
}

#[test]
fn load_data_local_infile_and_its_refusal() {
    let proxy = proxy_for(mariadb(), "");
    scenario(&proxy, "load_local", &[]);
}

#[test]
fn server_side_prepared_statements_beside_text_clients() {
    let proxy = proxy_for(mariadb(), "");
    scenario(&proxy, "prepared", &[]);
}

#[test]
fn caching_sha2_password_fast_path() {
    let proxy = proxy_for(mariadb(), "");
    scenario(&proxy, "caching_sha2", &[]);
}

#[test]
fn wrong_credentials_get_1045_and_an_unknown_database_1049() {
    let proxy = proxy_for(mariadb(), "");
    scenario(&proxy, "auth_errors", &[]);
}

#[test]
fn every_driver_connects_and_sees_the_real_version() {
    let db = mariadb();
    let version = db.exec("SELECT @@version");
    assert!(version.contains("MariaDB"), "{version}");
    let proxy = proxy_for(db, "");
    scenario(&proxy, "drivers", &[&version]);
}

#[test]
fn a_client_killed_mid_transaction_is_rolled_back() {
    let Some(py) = python() else { return };
    let db = mariadb();
    let proxy = proxy_for(db, "max_upstream = 1\nacquire_timeout = \"20s\"");
    let port = proxy.addr(POOL).port().to_string();
    let token = format!("killed-{}", std::process::id());
    let mut child = Command::new(py)
        .arg(repo_path("tests/e2e/mysql_edges.py"))
        .args(["hold_txn", "127.0.0.1", &port, &token])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim() != "inserted" {
        let _ = child.kill();
        let status = child.wait().unwrap();
        panic!("the holding client did not insert (exit {status}): {line:?}");
    }
    child.kill().expect("SIGKILL the client");
    child.wait().unwrap();
    // The proxy's only upstream: the next client gets it only after the rollback.
    scenario(&proxy, "after_kill", &[&token]);
    let committed = db.exec(&format!(
        "SELECT COUNT(*) FROM {MYSQL_DATABASE}.edge_killed WHERE token = '{token}'"
    ));
    assert_eq!(committed, "0", "the killed client's row was committed");
}

#[test]
fn an_exhausted_pool_answers_1040_naming_the_limit() {
    let proxy = proxy_for(mariadb(), "max_upstream = 1\nacquire_timeout = \"500ms\"");
    scenario(&proxy, "exhausted", &[POOL]);
}

#[test]
fn upstream_down_fails_fast_and_recovers_after_restart() {
    if python().is_none() {
        return;
    }
    let db = MariaDb::start();
    let proxy = proxy_for(&db, "acquire_timeout = \"5s\"\nconnect_timeout = \"3s\"");
    assert!(scenario(&proxy, "good_client", &[]));
    db.kill();
    // Whatever the proxy says, it must name the cause.
    scenario(
        &proxy,
        "upstream_down",
        &[
            "refused",
            "unavailable",
            "closed by the upstream",
            "lost connection",
        ],
    );
    db.restart();
    scenario(&proxy, "upstream_back", &[]);
}

#[test]
fn max_clients_refuses_the_third_client_with_1040() {
    let proxy = proxy_for(mariadb(), "max_clients = 2");
    scenario(&proxy, "max_clients", &[POOL]);
}

/// What a raw client gets after sending `garbage` (after reading the greeting if `greet`):
/// every byte until the proxy closes. Panics if the proxy neither answers nor closes in time.
fn after_garbage(addr: SocketAddr, greet: bool, garbage: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if greet {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut greeting = vec![0u8; len];
        s.read_exact(&mut greeting).unwrap();
        assert_eq!(greeting[0], 10, "a HandshakeV10 greeting");
    }
    s.write_all(garbage).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "after {:?} of garbage {:?} the proxy neither answered nor closed ({e}); got {got:?}",
                started.elapsed(),
                String::from_utf8_lossy(&garbage[..garbage.len().min(40)])
            ),
        }
    }
}

/// The bytes are an ERR packet (after an optional greeting), or nothing (closed).
fn assert_error_or_closed(bytes: &[u8], greeted: bool, what: &str) {
    let mut rest = bytes;
    if !greeted && rest.len() > 4 && rest[4] == 10 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], 0]) as usize;
        rest = &rest[4 + len..];
    }
    if rest.is_empty() {
        return;
    }
    assert!(
        rest.len() > 4 && rest[4] == 0xff,
        "{what}: expected an ERR packet or a close, got {rest:?}"
    );
}

#[test]
fn garbage_on_the_port_gets_an_error_and_others_carry_on() {
    let db = mariadb();
    let proxy = proxy_for(db, "");
    let addr = proxy.addr(POOL);
    // A client that stops in the middle of a packet stays open while the good client works.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET / HT").unwrap();
    let cases: [(&str, bool, &[u8]); 4] = [
        (
            "an HTTP request after the greeting",
            true,
            b"GET / HTTP/1.1\r\nHost: tidepool\r\n\r\n",
        ),
        (
            "an HTTP request before the greeting",
            false,
            b"GET / HTTP/1.1\r\nHost: tidepool\r\n\r\n",
        ),
        ("a short garbage packet", true, b"\x05\x00\x00\x01hello"),
        (
            "a TLS ClientHello",
            true,
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbagegarbagegarbage",
        ),
    ];
    for (what, greet, bytes) in cases {
        let answer = after_garbage(addr, greet, bytes);
        assert_error_or_closed(&answer, greet, what);
    }
    let good = mysql_cli(addr, MYSQL_USER, MYSQL_PASSWORD, None, "SELECT 6 * 7")
        .unwrap_or_else(|e| panic!("a good client failed beside the garbage: {e}"));
    assert_eq!(good, "42");
    scenario(&proxy, "good_client", &[]);
    drop(stalled);
}
