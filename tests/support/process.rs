//! Child processes that cannot outlive the test binary, temp dirs, and commands with a timeout.
//!
//! Why a watchdog shell: a test binary often exits without dropping statics (the shared MariaDB
//! lives in one) and may die from a panic with `panic = "abort"`, a signal, or a harness timeout.
//! `PR_SET_PDEATHSIG` needs libc and fires when the *spawning thread* exits, which with libtest's
//! thread per test is almost immediately; atexit-style destructors do not run on SIGKILL. Instead
//! every server is started by `sh`, which holds the read end of a pipe whose only write end is in
//! this process (std pipes are close-on-exec, so no other child inherits it). Whatever way this
//! process ends, the kernel closes the write end, `read` returns, and the shell SIGKILLs the
//! server, reaps it and deletes its directory. Because the shell is the server's parent and reaps
//! it only then, the server's pid cannot be reused while we look at it. The watchdog runs in its
//! own process group so a terminal Ctrl-C reaches only the test binary, never the server directly.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const WATCHDOG: &str = r#"
dir=$1; log=$2; shift 2
"$@" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid"
exec >/dev/null
read -r cmd || cmd=
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$cmd" = keep ] || rm -rf -- "$dir"
"#;

/// A server process supervised by the watchdog shell described above.
pub(crate) struct ServerProcess {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl ServerProcess {
    /// Starts `name args…` with stdout and stderr appended to `log`. The watchdog deletes
    /// `dir` when this process goes away without `stop(keep_dir = true)`.
    pub(crate) fn spawn(name: &str, args: &[String], dir: &Path, log: &Path) -> ServerProcess {
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("tidepool-test-watchdog")
            .arg(dir)
            .arg(log)
            .arg(program(name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn the watchdog shell for {name}: {e}"));
        let mut line = String::new();
        let stdout = watchdog.stdout.take().expect("watchdog stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read server pid from watchdog");
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("watchdog printed {line:?}"));
        let stdin = watchdog.stdin.take();
        ServerProcess {
            watchdog,
            stdin,
            pid,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// False once the server exited or was killed (it stays a zombie until the watchdog reaps it).
    pub(crate) fn is_running(&self) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, None | Some('Z' | 'X'))
    }

    /// SIGKILLs the server and waits until it is reaped; keeps or deletes its directory.
    pub(crate) fn stop(mut self, keep_dir: bool) {
        self.shutdown(keep_dir);
    }

    fn shutdown(&mut self, keep_dir: bool) {
        let Some(mut stdin) = self.stdin.take() else {
            return;
        };
        if keep_dir {
            // If the watchdog already died this fails and it cannot delete anything anyway.
            let _ = stdin.write_all(b"keep\n");
        }
        drop(stdin);
        let _ = self.watchdog.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// A directory under the temp dir, removed on drop. Named `tidepool-test-<pid>-<label>-<n>` so
/// that dirs left by a test binary that was SIGKILLed are swept by the next one.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        static SWEEP: Once = Once::new();
        let base = temp_base();
        SWEEP.call_once(|| sweep_stale(&base));
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("tidepool-test-{}-{label}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Unix socket paths are limited to 108 bytes, so a long `$TMPDIR` falls back to `/tmp`.
fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if base.as_os_str().len() <= 40 {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

fn sweep_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("tidepool-test-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read log: {e}>"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `cmd` to completion, capturing stdout and stderr. After `timeout` the command's whole
/// process group is SIGKILLed and this panics with what it had printed.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // Negative pid: the group, so grandchildren holding our pipes die too.
            signal(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
            let out = String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned();
            let err = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("{what} timed out after {timeout:?}\n--- stdout\n{out}\n--- stderr\n{err}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Sends signal `name` (`"KILL"`, `"STOP"`, `"CONT"`…) to `target`, a pid or `-pgid`. Uses the
/// shell's builtin `kill`: `/bin/kill` (procps) is missing on slim machines.
pub fn signal(target: &str, name: &str) {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" -- \"$2\"", "sh", name, target])
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        panic!("cannot run sh to send SIG{name} to {target}: {e}");
    }
}

/// `name` from `PATH`, else from the sbin directories a non-root `PATH` lacks (`mariadbd`).
pub(crate) fn program(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join(name).is_file()) {
        return name.to_owned();
    }
    ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
        .map_or_else(|| name.to_owned(), |found| found.display().to_string())
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
