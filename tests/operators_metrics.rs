//! statsd metrics arrive at a real UDP listener with the documented names.

#[path = "support/harness.rs"]
mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use support::RedisServer;
use support::proxy::{RespClient, TestProxy, text};
use tidepool::metrics;

#[test]
fn statsd_datagrams_carry_the_documented_names_and_tags() {
    let redis = RedisServer::start();
    let statsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    statsd
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let toml = format!(
        "[metrics]\nstatsd = \"{}\"\nprefix = \"tp\"\nflush_interval = \"100ms\"\n[log]\nlevel = \"warn\"\n[[pool]]\nname = \"redis\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\n",
        statsd.local_addr().unwrap(),
        redis.addr()
    );
    let proxy = TestProxy::start(&toml);
    let mut c = RespClient::connect(proxy.addr("redis"));
    assert_eq!(text(&c.call(&["SET", "m", "1"])), "OK");
    assert!(text(&c.call(&["MONITOR"])).starts_with("-ERR tidepool: MONITOR"));
    let mut w = RespClient::connect(proxy.addr("redis"));
    assert_eq!(text(&w.call(&["WATCH", "m"])), "OK");

    let expected = [
        format!("tp.{}:2|g|#pool:redis", metrics::CLIENTS_CONNECTED),
        format!(
            "tp.{}:1|g|#pool:redis,reason:watch",
            metrics::SESSIONS_PINNED
        ),
        format!("tp.{}:1|c|#pool:redis,kind:refused", metrics::ERRORS),
        format!("tp.{}:", metrics::COMMANDS),
        format!("tp.{}:", metrics::UPSTREAMS_OPEN),
        format!("tp.{}:", metrics::UPSTREAMS_DEDICATED_IN_USE),
        format!("tp.{}:", metrics::COMMAND_LATENCY_P99_US),
        format!("tp.{}:", metrics::ACQUIRES),
        format!("tp.{}:0|c", metrics::RELOADS),
    ];
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let missing = |seen: &[String]| -> Vec<String> {
        expected
            .iter()
            .filter(|e| !seen.iter().any(|s| s.starts_with(e.as_str())))
            .cloned()
            .collect()
    };
    let mut buf = [0u8; 2048];
    while !missing(&seen).is_empty() && Instant::now() < deadline {
        if let Ok(n) = statsd.recv(&mut buf) {
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.extend(datagram.lines().map(String::from));
        }
    }
    assert!(
        missing(&seen).is_empty(),
        "missing {:?}; got {seen:?}",
        missing(&seen)
    );
}
