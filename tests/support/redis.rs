//! A real `redis-server` on a free loopback port, plus a tiny RESP2 client to inspect it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::process::{ServerProcess, TempDir, log_tail, signal};
use super::{free_port, loopback};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One `redis-server`, no persistence, bound to 127.0.0.1. Killed and its dir removed on drop.
pub struct RedisServer {
    // Declared before `dir`: fields drop in order, and the server must stop before its dir goes.
    process: Mutex<Option<ServerProcess>>,
    dir: TempDir,
    port: u16,
    args: Vec<String>,
    password: Option<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// `extra_args` are appended to the command line, e.g. `["--requirepass", "pw"]` or
    /// `["--maxclients", "10"]`. A `--requirepass` is remembered for the inspection helpers.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let password = extra
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| extra.get(i + 1).cloned());
        let mut server = RedisServer {
            process: Mutex::new(None),
            dir: TempDir::new("redis"),
            port: 0,
            args: extra,
            password,
        };
        let mut last_log = String::new();
        // The free port can be taken between our probe and the server's bind: retry then.
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("redis-server did not start (port {}):\n{log}", server.port),
            }
        }
        panic!("redis-server could not bind a free port in 5 tries:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's pid while it runs (for tests that want to SIGSTOP it, for example).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.lock().as_ref().is_some_and(ServerProcess::is_running)
    }

    /// SIGKILL, as a crash would; returns once the process is gone. The dir is kept.
    pub fn kill(&self) {
        self.stop(true);
    }

    /// Kills the server if it runs, then starts it again on the same port and dir; returns when
    /// it answers PING. Data is not kept (no persistence).
    pub fn restart(&self) {
        self.stop(true);
        if let Err(log) = self.spawn() {
            panic!("redis-server did not restart on port {}:\n{log}", self.port);
        }
    }

    /// SIGSTOP: the server keeps its connections but answers nothing (a stuck upstream).
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            signal(&pid.to_string(), "STOP");
        }
    }

    /// SIGCONT after `freeze()`.
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            signal(&pid.to_string(), "CONT");
        }
    }

    /// Sends one command on a fresh connection (authenticated if the server has a password).
    pub fn command(&self, args: &[&str]) -> Reply {
        redis_command(self.addr(), self.password(), args)
            .unwrap_or_else(|e| panic!("redis {args:?} on {}: {e}", self.addr()))
    }

    /// `CLIENT LIST` lines of every client except the connection that asked.
    pub fn client_list(&self) -> Vec<String> {
        let mut conn = RespConn::open(self.addr(), self.password())
            .unwrap_or_else(|e| panic!("connect to redis {}: {e}", self.addr()));
        let own_id = match conn.call(&["CLIENT", "ID"]) {
            Ok(Reply::Integer(id)) => id,
            other => panic!("CLIENT ID answered {other:?}"),
        };
        let own = format!("id={own_id} ");
        match conn.call(&["CLIENT", "LIST"]) {
            Ok(Reply::Bulk(Some(text))) => String::from_utf8_lossy(&text)
                .lines()
                .filter(|line| !line.is_empty() && !line.starts_with(&own))
                .map(str::to_owned)
                .collect(),
            other => panic!("CLIENT LIST answered {other:?}"),
        }
    }

    /// How many other clients' `CLIENT LIST` lines contain `filter` ("" counts them all), e.g.
    /// `"cmd=blpop"`, `"db=3"`, `"name=tidepool"`.
    pub fn client_list_count(&self, filter: &str) -> usize {
        self.client_list()
            .iter()
            .filter(|line| line.contains(filter))
            .count()
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("redis.log"), 40)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ServerProcess>> {
        self.process
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stop(&self, keep_dir: bool) {
        if let Some(process) = self.lock().take() {
            process.stop(keep_dir);
        }
    }

    /// Starts the process and waits for PING; on failure returns the log tail.
    fn spawn(&self) -> Result<(), String> {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--dir",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(self.dir.path().display().to_string());
        args.extend(self.args.iter().cloned());
        let log = self.dir.path().join("redis.log");
        let process = ServerProcess::spawn("redis-server", &args, self.dir.path(), &log);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if answers_ping(self.addr()) {
                *self.lock() = Some(process);
                return Ok(());
            }
            if !process.is_running() || Instant::now() >= deadline {
                let why = if process.is_running() {
                    "not ready in time"
                } else {
                    "exited"
                };
                process.stop(true);
                return Err(format!(
                    "redis-server {why}; log tail:\n{}",
                    log_tail(&log, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut conn) = RespConn::open(addr, None) else {
        return false;
    };
    match conn.call(&["PING"]) {
        Ok(Reply::Simple(s)) => s == "PONG",
        // With --requirepass: it is up, it just wants AUTH first.
        Ok(Reply::Error(e)) => e.starts_with("NOAUTH"),
        _ => false,
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for simple strings, bulk strings and integers.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Integer(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// One command on a fresh connection to `addr`, after `AUTH password` when given.
pub fn redis_command(addr: SocketAddr, password: Option<&str>, args: &[&str]) -> io::Result<Reply> {
    RespConn::open(addr, password)?.call(args)
}

struct RespConn {
    stream: BufReader<TcpStream>,
}

impl RespConn {
    fn open(addr: SocketAddr, password: Option<&str>) -> io::Result<RespConn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut conn = RespConn {
            stream: BufReader::new(stream),
        };
        if let Some(password) = password {
            match conn.call(&["AUTH", password])? {
                Reply::Simple(_) => {}
                other => return Err(io::Error::other(format!("AUTH answered {other:?}"))),
            }
        }
        Ok(conn)
    }

    fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&out)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "redis closed the connection",
            ));
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(line.len().min(1));
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad RESP line {line:?}"),
            )
        };
        let number = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(number()?),
            "$" => match usize::try_from(number()?) {
                Err(_) => Reply::Bulk(None),
                Ok(len) => {
                    let mut data = vec![0; len + 2];
                    self.stream.read_exact(&mut data)?;
                    data.truncate(len);
                    Reply::Bulk(Some(data))
                }
            },
            "*" => match usize::try_from(number()?) {
                Err(_) => Reply::Array(None),
                Ok(len) => Reply::Array(Some(
                    (0..len)
                        .map(|_| self.read_reply())
                        .collect::<io::Result<_>>()?,
                )),
            },
            _ => return Err(bad()),
        })
    }
}
