//! The Python virtualenv that `scripts/test` builds for the end-to-end client tests.
//!
//! `scripts/test` exports `TIDEPOOL_TEST_PYTHON` (the venv's python) and `TIDEPOOL_REQUIRE_E2E=1`.
//! A plain `cargo test` has neither: the end-to-end tests then skip loudly instead of failing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::process::run_with_timeout;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The venv's python, or `None` (after a loud SKIPPED line) when `TIDEPOOL_TEST_PYTHON` is unset.
/// Panics when it is unset but `TIDEPOOL_REQUIRE_E2E=1`, or set to a path that does not exist.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("TIDEPOOL_TEST_PYTHON") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "TIDEPOOL_TEST_PYTHON={} does not exist",
                path.display()
            );
            Some(path)
        }
        _ => {
            let required = std::env::var("TIDEPOOL_REQUIRE_E2E").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "TIDEPOOL_REQUIRE_E2E=1 but TIDEPOOL_TEST_PYTHON is unset: run the tests with scripts/test"
            );
            // Straight to the stderr handle: libtest captures eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: end-to-end Python tests need scripts/test (TIDEPOOL_TEST_PYTHON unset)"
            );
            None
        }
    }
}

/// Runs `python script args…` with a 120 s timeout; `None` when Python tests are skipped.
pub fn run_python(script: &Path, args: &[&str]) -> Option<Output> {
    run_python_with(script, args, &[], DEFAULT_TIMEOUT)
}

/// Like `run_python` with extra environment variables and a chosen timeout.
pub fn run_python_with(
    script: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Option<Output> {
    let mut cmd = Command::new(python()?);
    cmd.arg(script).args(args);
    Some(run(cmd, envs, timeout))
}

/// Runs `python -c code args…` (in the script, `sys.argv[1:]` are `args`).
pub fn run_python_code(code: &str, args: &[&str]) -> Option<Output> {
    let mut cmd = Command::new(python()?);
    cmd.arg("-c").arg(code).args(args);
    Some(run(cmd, &[], DEFAULT_TIMEOUT))
}

/// Panics with the script's stdout and stderr unless it exited 0.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "python exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run(mut cmd: Command, envs: &[(&str, &str)], timeout: Duration) -> Output {
    cmd.env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    run_with_timeout(&mut cmd, timeout)
}
