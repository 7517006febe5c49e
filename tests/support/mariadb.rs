//! A real `mariadbd` in a temp datadir on a free loopback port, driven through the `mariadb` CLI.

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::process::{ServerProcess, TempDir, log_tail, program, run_with_timeout, signal};
use super::{MYSQL_DATABASE, MYSQL_PASSWORD, MYSQL_ROOT_PASSWORD, MYSQL_USER, free_port, loopback};

const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);
// Generous: after a SIGKILL the restart runs InnoDB crash recovery, and CI machines are slow.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
// The default redo log (96 MB) would make each datadir 114 MB instead of 26 MB.
const LOG_FILE_SIZE: &str = "--innodb-log-file-size=16M";

/// Settings for a MariaDB that a test starts for itself (fault tests, a low `max_connections`).
#[derive(Debug, Clone, Default)]
pub struct MariaDbOptions {
    /// MariaDB raises values below 10 to 10.
    pub max_connections: Option<u32>,
    /// Extra `mariadbd` options, e.g. `"--wait-timeout=5"`.
    pub extra_args: Vec<String>,
}

impl MariaDbOptions {
    pub fn max_connections(mut self, n: u32) -> MariaDbOptions {
        self.max_connections = Some(n);
        self
    }

    pub fn arg(mut self, arg: &str) -> MariaDbOptions {
        self.extra_args.push(arg.to_owned());
        self
    }
}

/// One `mariadbd` with database `tidepool_test`, `app`/`app-secret` and `root`/`root-secret`.
///
/// `app` has every privilege except SUPER and CONNECTION ADMIN, like a real application account:
/// those two let a user open one connection beyond `max_connections`, which would blur the
/// bounded-upstream tests.
pub struct MariaDb {
    // Declared before `dir`: fields drop in order, and the server must stop before its dir goes.
    process: Mutex<Option<ServerProcess>>,
    dir: TempDir,
    port: u16,
    opts: MariaDbOptions,
}

impl MariaDb {
    /// The binary's shared server, started on first use and killed when the binary exits.
    /// Do not `kill()` it: other tests run concurrently against it; start your own for faults.
    pub fn shared() -> &'static MariaDb {
        static SHARED: OnceLock<MariaDb> = OnceLock::new();
        SHARED.get_or_init(MariaDb::start)
    }

    pub fn start() -> MariaDb {
        MariaDb::start_with(MariaDbOptions::default())
    }

    pub fn start_with(opts: MariaDbOptions) -> MariaDb {
        let mut db = MariaDb {
            process: Mutex::new(None),
            dir: TempDir::new("mariadb"),
            port: 0,
            opts,
        };
        db.install();
        let mut last_log = String::new();
        // The free port can be taken between our probe and the server's bind: retry then.
        for _ in 0..5 {
            db.port = free_port();
            match db.spawn() {
                Ok(()) => {
                    db.create_accounts();
                    return db;
                }
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("mariadbd did not start (port {}):\n{log}", db.port),
            }
        }
        panic!("mariadbd could not bind a free port in 5 tries:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(ServerProcess::pid)
    }

    pub fn is_running(&self) -> bool {
        self.lock().as_ref().is_some_and(ServerProcess::is_running)
    }

    /// SIGKILL, as a crash would; returns once the process is gone. The datadir is kept.
    pub fn kill(&self) {
        if let Some(process) = self.lock().take() {
            process.stop(true);
        }
    }

    /// Kills the server if it runs, then starts it again on the same port and datadir (InnoDB
    /// recovers); returns when it accepts connections.
    pub fn restart(&self) {
        self.kill();
        if let Err(log) = self.spawn() {
            panic!("mariadbd did not restart on port {}:\n{log}", self.port);
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

    /// Runs SQL as root over the unix socket; returns stdout (tab-separated, no headers, trailing
    /// newline removed). Panics with the client's error.
    pub fn exec(&self, sql: &str) -> String {
        self.try_exec(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"))
    }

    pub fn try_exec(&self, sql: &str) -> Result<String, String> {
        let socket = self.socket_path();
        let socket = socket.to_str().expect("utf-8 socket path");
        cli(
            &[
                "--protocol=socket",
                "-S",
                socket,
                "-uroot",
                &format!("--password={MYSQL_ROOT_PASSWORD}"),
            ],
            sql,
        )
    }

    /// Connections currently open as `user`, from `information_schema.PROCESSLIST`.
    pub fn processlist_count(&self, user: &str) -> usize {
        let user = user.replace('\'', "''");
        let out = self.exec(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        ));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("processlist count {out:?}"))
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("error.log"), 40)
    }

    fn lock(&self) -> MutexGuard<'_, Option<ServerProcess>> {
        self.process
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn install(&self) {
        let dir = self.dir.path();
        let tmpdir = dir.join("tmp");
        fs::create_dir_all(&tmpdir).expect("create the MariaDB tmpdir");
        let mut cmd = Command::new(program("mariadb-install-db"));
        // --no-defaults first: never read the machine's /etc/mysql (its port, socket, datadir).
        // Own tmpdir: concurrent bootstraps sharing /tmp fail now and then ("Could not remove
        // temporary table … Unknown table 'mysql.tmp_user_sys'").
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}/data", dir.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(LOG_FILE_SIZE)
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if running_as_root() {
            cmd.arg("--user=root");
        }
        let out = run_with_timeout(&mut cmd, INSTALL_TIMEOUT);
        assert!(
            out.status.success(),
            "mariadb-install-db failed (is mariadb-server installed? see scripts/install-deps)\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn server_args(&self) -> Vec<String> {
        let dir = self.dir.path().display();
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={dir}/data"),
            format!("--socket={dir}/mysqld.sock"),
            format!("--pid-file={dir}/mysqld.pid"),
            format!("--tmpdir={dir}/tmp"),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".to_owned(),
            // Accounts are matched on 127.0.0.1 / %, and no DNS lookups slow down connects.
            "--skip-name-resolve".to_owned(),
            // Tests throw garbage at the proxy; the upstream must not block 127.0.0.1 for that.
            "--max-connect-errors=1000000".to_owned(),
            "--character-set-server=utf8mb4".to_owned(),
            "--collation-server=utf8mb4_general_ci".to_owned(),
            "--innodb-buffer-pool-size=64M".to_owned(),
            LOG_FILE_SIZE.to_owned(),
            // Commits reach the OS at once: they survive kill(), only an OS crash loses them.
            "--innodb-flush-log-at-trx-commit=2".to_owned(),
        ];
        if let Some(n) = self.opts.max_connections {
            args.push(format!("--max-connections={n}"));
        }
        if running_as_root() {
            args.push("--user=root".to_owned());
        }
        args.extend(self.opts.extra_args.iter().cloned());
        args
    }

    /// Starts the process and waits for its handshake; on failure returns the log tail.
    fn spawn(&self) -> Result<(), String> {
        let log = self.dir.path().join("error.log");
        let process = ServerProcess::spawn("mariadbd", &self.server_args(), self.dir.path(), &log);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if sends_greeting(self.addr()) {
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
                return Err(format!("mariadbd {why}; log tail:\n{}", log_tail(&log, 40)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn create_accounts(&self) {
        let socket = self.socket_path();
        let socket = socket.to_str().expect("utf-8 socket path");
        let root = MYSQL_ROOT_PASSWORD;
        let (user, password, database) = (MYSQL_USER, MYSQL_PASSWORD, MYSQL_DATABASE);
        let sql = format!(
            "ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY '{root}';
             ALTER USER IF EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '{root}';
             ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY '{root}';
             CREATE USER 'root'@'%' IDENTIFIED BY '{root}';
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
             CREATE USER '{user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{password}');
             CREATE USER '{user}'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('{password}');
             GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%', '{user}'@'localhost';
             REVOKE SUPER, CONNECTION ADMIN ON *.* FROM '{user}'@'%', '{user}'@'localhost';
             CREATE DATABASE {database};"
        );
        // Root has no password yet (--auth-root-authentication-method=normal), whatever OS user
        // runs the tests.
        if let Err(e) = cli(&["--protocol=socket", "-S", socket, "-uroot"], &sql) {
            panic!(
                "creating the test accounts failed:\n{e}\nlog tail:\n{}",
                self.log_tail()
            );
        }
    }
}

/// Runs SQL through the `mariadb` CLI over TCP at `addr` (MariaDB itself or the proxy in front of
/// it) as `user`; returns stdout (tab-separated, no headers) or the client's error text.
/// Comments are sent as written (the CLI strips them by default).
pub fn mysql_cli(
    addr: SocketAddr,
    user: &str,
    password: &str,
    database: Option<&str>,
    sql: &str,
) -> Result<String, String> {
    let mut args = vec![
        "--protocol=tcp".to_owned(),
        format!("--host={}", addr.ip()),
        format!("--port={}", addr.port()),
        format!("--user={user}"),
        format!("--password={password}"),
    ];
    if let Some(database) = database {
        args.push(format!("--database={database}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&args, sql)
}

fn cli(connect: &[&str], sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(program("mariadb"));
    cmd.arg("--no-defaults").args(connect).args([
        "--batch",
        "--skip-column-names",
        "--comments",
        "--connect-timeout=10",
        "-e",
        sql,
    ]);
    let out = run_with_timeout(&mut cmd, CLI_TIMEOUT);
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The server is ready when a TCP connection gets an initial handshake (protocol version 10).
fn sends_greeting(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).is_ok() && header[4] == 10
}

fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .is_some_and(|euid| euid == "0")
    })
}
