//! A real `tidepool run` process with a MySQL pool: a password rotated in the file applies on
//! SIGHUP without a restart (connected clients carry on), and `min_idle` connections are kept
//! open with no client at all.

#[path = "support/harness.rs"]
mod support;

use support::proxy::ProxyProcess;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::mysql_client::MysqlClient;
use support::{
    MYSQL_DATABASE, MYSQL_PASSWORD, MYSQL_USER, MariaDb, TempDir, free_port, signal, wait_for,
};

/// A `tidepool run` child, killed if the test ends without stopping it.
struct Running {
    child: ProxyProcess,
    addr: std::net::SocketAddr,
    config: PathBuf,
    _dir: TempDir,
}

fn config_text(port: u16, db: &MariaDb, client_password: &str, extra: &str) -> String {
    format!(
        "[log]\nlevel = \"warn\"\n[[pool]]\nname = \"db\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\n{extra}\n  [[pool.users]]\n  user = \"{MYSQL_USER}\"\n  password = \"{client_password}\"\n  upstream_password = \"{MYSQL_PASSWORD}\"\n",
        db.addr()
    )
}

fn run(db: &MariaDb, client_password: &str, extra: &str) -> Running {
    let dir = TempDir::new("mysql-reload");
    let config = dir.path().join("proxy.toml");
    let port = free_port();
    std::fs::write(&config, config_text(port, db, client_password, extra)).unwrap();
    let child = ProxyProcess::spawn(&config, &dir.path().join("proxy.log"));
    let addr = ([127, 0, 0, 1], port).into();
    wait_for("the proxy to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    Running {
        child,
        addr,
        config,
        _dir: dir,
    }
}

fn login(addr: std::net::SocketAddr, password: &str) -> Result<MysqlClient, (u16, String)> {
    MysqlClient::connect(addr, MYSQL_USER, password, Some(MYSQL_DATABASE))
}

fn rewrite(path: &Path, text: String) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_rotated_password_applies_on_sighup_and_connected_clients_carry_on() {
    let db = MariaDb::shared();
    let p = run(db, "old-secret", "");
    let mut connected = login(p.addr, "old-secret").expect("the old password works");
    assert_eq!(connected.value("SELECT 1").unwrap().as_deref(), Some("1"));
    rewrite(&p.config, config_text(p.addr.port(), db, "new-secret", ""));
    signal(&p.child.id().to_string(), "HUP");
    wait_for(
        "the new password to be accepted",
        Duration::from_secs(10),
        || login(p.addr, "new-secret").is_ok(),
    );
    assert_eq!(
        login(p.addr, "old-secret").err().map(|e| e.0),
        Some(1045),
        "the old password is refused"
    );
    assert_eq!(
        connected.value("SELECT 2").unwrap().as_deref(),
        Some("2"),
        "a connected client carries on"
    );
}

#[test]
fn min_idle_connections_are_opened_with_no_client_at_all() {
    let db = MariaDb::start();
    let _p = run(&db, MYSQL_PASSWORD, "min_idle = 2\nmax_upstream = 4");
    // The reaper tops the pool up every few seconds. At least min_idle (the load sample may
    // have opened one more of the pool's own, within max_upstream).
    wait_for(
        "min_idle upstream connections",
        Duration::from_secs(15),
        || (2..=4).contains(&db.processlist_count(MYSQL_USER)),
    );
}
