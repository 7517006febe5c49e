//! Test harness shared by every integration test: real `redis-server` and `mariadbd` upstreams on
//! free ports, and the Python virtualenv for the end-to-end client tests.
//!
//! How a test binary uses it — one line, no `mod.rs`, no extra test binary:
//!
//! ```ignore
//! #[path = "support/harness.rs"]
//! mod support;
//! use support::{MariaDb, RedisServer};
//! ```
//!
//! Cargo builds every `tests/*.rs` as its own test binary, so a `tests/support.rs` would become an
//! empty one; files in `tests/support/` are not discovered. A module loaded through `#[path]` is
//! treated like a directory module, so the `mod` lines below resolve to `tests/support/*.rs`.
//! Each binary compiles the whole harness but uses part of it, hence `allow(dead_code)`.
//!
//! The upstream and Python helpers are blocking std code, independent of the crate under test
//! (`proxy.rs` is the one part that uses it). From a `#[tokio::test]` their calls are short
//! enough to make directly (milliseconds), except the first `MariaDb::shared()` (about a
//! second); prefer calling it before starting the proxy.
//!
//! Servers never outlive the test binary: see `process.rs` for the watchdog that guarantees it.
#![allow(dead_code, unused_imports)]

mod mariadb;
pub mod mysql_client;
mod process;
pub mod proxy;
mod python;
mod redis;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

pub use mariadb::{MariaDb, MariaDbOptions, mysql_cli};
pub use process::{TempDir, run_with_timeout, signal};
pub use python::{assert_success, python, run_python, run_python_code, run_python_with};
pub use redis::{RedisServer, Reply, redis_command};

/// Database created in every MariaDB the harness starts.
pub const MYSQL_DATABASE: &str = "tidepool_test";
/// Application account (`app`@`%` and `app`@`localhost`, mysql_native_password, ALL privileges).
pub const MYSQL_USER: &str = "app";
pub const MYSQL_PASSWORD: &str = "app-secret";
/// `root`, reachable over TCP and the socket with this password.
pub const MYSQL_ROOT_PASSWORD: &str = "root-secret";

/// A loopback port that was free a moment ago. Servers started on it retry on a collision.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Polls `check` every 10 ms until it returns true; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `work` while another thread polls `sample` (every `every`); returns the highest value
/// sampled and what `work` returned. For bounds such as "the upstream never saw more than N
/// connections from the proxy".
pub fn most_during<T>(
    every: Duration,
    sample: impl Fn() -> usize + Send + 'static,
    work: impl FnOnce() -> T,
) -> (usize, T) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, most) = (stop.clone(), most.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(sample(), Ordering::Relaxed);
                std::thread::sleep(every);
            }
        })
    };
    let result = work();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler thread");
    (most.load(Ordering::Relaxed), result)
}

/// `relative` inside the repository (e.g. `"tests/e2e/pymysql_pool.py"`), whatever the cwd.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
