//! Reload adds and removes pools in a running `tidepool run`: an added pool serves at once; a
//! removed pool takes no new clients while its connected ones carry on; a pool that cannot
//! listen refuses the whole reload.

#[path = "support/harness.rs"]
mod support;

use support::proxy::ProxyProcess;

use std::time::Duration;

use support::proxy::{RespClient, text};
use support::{RedisServer, TempDir, free_port, signal, wait_for};

fn pool(name: &str, port: u16, redis: &RedisServer) -> String {
    format!(
        "[[pool]]\nname = \"{name}\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\n",
        redis.addr()
    )
}

fn pings(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && {
        let mut c = RespClient::connect(([127, 0, 0, 1], port).into());
        c.send(&["PING"]);
        c.read().is_ok_and(|v| text(&v) == "PONG")
    }
}

#[test]
fn sighup_adds_and_removes_pools_without_a_restart() {
    let redis = RedisServer::start();
    let dir = TempDir::new("reload-pools");
    let config = dir.path().join("proxy.toml");
    let (a, b) = (free_port(), free_port());
    let socket = dir.path().join("admin.sock");
    let header = format!(
        "[admin]\nsocket = \"{}\"\n[log]\nlevel = \"warn\"\n",
        socket.display()
    );
    std::fs::write(&config, format!("{header}{}", pool("a", a, &redis))).unwrap();
    // Declared after `dir`, so dropped (killed) before the directory goes.
    let proxy = ProxyProcess::spawn(&config, &dir.path().join("proxy.log"));
    let pid = proxy.id().to_string();
    wait_for("pool a", Duration::from_secs(10), || pings(a));
    let mut on_a = RespClient::connect(([127, 0, 0, 1], a).into());
    assert_eq!(text(&on_a.call(&["SET", "k", "v"])), "OK");

    std::fs::write(
        &config,
        format!("{header}{}{}", pool("a", a, &redis), pool("b", b, &redis)),
    )
    .unwrap();
    signal(&pid, "HUP");
    wait_for("the added pool b to serve", Duration::from_secs(10), || {
        pings(b)
    });

    std::fs::write(&config, format!("{header}{}", pool("b", b, &redis))).unwrap();
    signal(&pid, "HUP");
    wait_for(
        "the removed pool a to stop accepting",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", a)).is_err(),
    );
    assert_eq!(
        text(&on_a.call(&["GET", "k"])),
        "v",
        "a client of the removed pool carries on"
    );
    assert!(pings(b));

    // A pool that cannot listen (its port is taken) refuses the whole reload, saying why.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = taken.local_addr().unwrap().port();
    std::fs::write(
        &config,
        format!("{header}{}{}", pool("b", b, &redis), pool("c", c, &redis)),
    )
    .unwrap();
    let (answer, failed) =
        tidepool::admin::client::call(&socket, &["reload".to_string()], false).unwrap();
    assert!(
        failed && answer.contains("reload refused") && answer.contains("pool \"c\""),
        "{answer}"
    );
    assert!(pings(b), "the running config keeps serving");
}
