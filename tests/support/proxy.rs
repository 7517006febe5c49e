//! The proxy under test, in-process on port 0, on a runtime of its own so that tests can stay
//! plain blocking code (raw sockets, Python clients) while the proxy runs beside them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tidepool::config::Config;
use tidepool::redis::resp::{self, Limits, Scanner, Value};
use tidepool::server::{Proxy, StopKind, Stopper};

pub struct TestProxy {
    rt: Option<tokio::runtime::Runtime>,
    addrs: Vec<(String, SocketAddr)>,
    stopper: Stopper,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl TestProxy {
    /// Starts the proxy with a config given as TOML text (listen on `127.0.0.1:0`).
    pub fn start(toml: &str) -> TestProxy {
        let cfg = Arc::new(
            Config::from_toml(toml).unwrap_or_else(|e| panic!("test config invalid: {e}\n{toml}")),
        );
        let names: Vec<String> = cfg.pools.iter().map(|p| p.name.clone()).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let proxy = rt.block_on(Proxy::start(cfg)).expect("proxy starts");
        let addrs = names
            .iter()
            .filter_map(|n| proxy.local_addr(n).map(|a| (n.clone(), a)))
            .collect();
        let stopper = proxy.stopper();
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            proxy.wait().await;
            let _ = tx.send(());
        });
        TestProxy {
            rt: Some(rt),
            addrs,
            stopper,
            done: Some(rx),
        }
    }

    pub fn addr(&self, pool: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| n == pool)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no pool {pool:?} listening on TCP"))
    }

    pub fn stop(&self, kind: StopKind) {
        let stopper = self.stopper.clone();
        self.rt
            .as_ref()
            .expect("running")
            .spawn(async move { stopper.stop(kind) });
    }

    /// Waits for the proxy to finish stopping; false if it did not within `timeout`.
    pub fn wait_stopped(&mut self, timeout: Duration) -> bool {
        let Some(rx) = self.done.take() else {
            return true;
        };
        let rt = self.rt.as_ref().expect("running");
        rt.block_on(async { tokio::time::timeout(timeout, rx).await.is_ok() })
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A minimal blocking RESP client for tests that need byte-level control.
pub struct RespClient {
    pub stream: TcpStream,
    buf: BytesMut,
    scanner: Scanner,
}

impl RespClient {
    pub fn connect(addr: SocketAddr) -> RespClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RespClient {
            stream,
            buf: BytesMut::new(),
            scanner: Scanner::new(Limits::default()),
        }
    }

    pub fn send(&mut self, args: &[&str]) {
        let mut out = BytesMut::new();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        resp::encode_command(&mut out, &args);
        self.stream.write_all(&out).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one reply; `Err` with the I/O error when the connection ends first.
    pub fn read(&mut self) -> Result<Value, std::io::Error> {
        loop {
            if let Some(info) = self.scanner.scan(&self.buf).expect("proxy sent valid RESP") {
                let frame = self.buf.split_to(info.len);
                return Ok(resp::decode_value(&frame, Limits::default()).unwrap());
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call(&mut self, args: &[&str]) -> Value {
        self.send(args);
        self.read().unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

/// A reply as text, for assertions: simple strings and bulks as their text, errors prefixed
/// with `-`, integers as digits, null as `nil`.
pub fn text(v: &Value) -> String {
    match v {
        Value::Error(e) => format!("-{}", String::from_utf8_lossy(e)),
        Value::Integer(n) => n.to_string(),
        Value::Null => "nil".into(),
        other => other
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// A Redis pool config for tests, pointing at `upstream`.
pub fn redis_pool_toml(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[log]\nlevel = \"warn\"\n[[pool]]\nname = \"redis\"\nprotocol = \"redis\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

/// A MySQL pool config for tests named `name`, pointing at `upstream`, with the harness's
/// `app` account and a second client user, `reporter` / `reporter-secret`, mapped to it.
pub fn mysql_pool_toml(name: &str, upstream: SocketAddr, extra: &str) -> String {
    let (user, password) = (super::MYSQL_USER, super::MYSQL_PASSWORD);
    format!(
        "[log]\nlevel = \"warn\"\n[[pool]]\nname = \"{name}\"\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\n{extra}\n  [[pool.users]]\n  user = \"{user}\"\n  password = \"{password}\"\n  [[pool.users]]\n  user = \"reporter\"\n  password = \"reporter-secret\"\n  upstream_user = \"{user}\"\n  upstream_password = \"{password}\"\n"
    )
}

/// A `tidepool run` child process, for the paths only a real process has (signals, reload from
/// its file); killed if the test ends without stopping it.
pub struct ProxyProcess {
    child: std::process::Child,
}

impl ProxyProcess {
    /// Runs `tidepool run --config <config>`, its log in `log`.
    pub fn spawn(config: &std::path::Path, log: &std::path::Path) -> ProxyProcess {
        use std::process::{Command, Stdio};
        let child = Command::new(env!("CARGO_BIN_EXE_tidepool"))
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("proxy log file"))
            .spawn()
            .expect("tidepool run starts");
        ProxyProcess { child }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
