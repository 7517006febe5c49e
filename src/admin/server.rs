//! The admin socket: a Unix socket created mode 0600 (its parent directory created, a stale
//! file from a dead proxy removed), one command per line, one response per command.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::Control;
use super::proto::{Request, Response};

/// The longest command line accepted.
const MAX_LINE: usize = 4096;

/// Binds the socket (synchronously, so that `run` fails at start when it cannot).
pub fn bind(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket; not removing it",
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another running proxy answers on this admin socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    // Only the proxy's own user may talk to it: the socket can kill clients and stop the proxy.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts admin connections until `stop`, then removes the socket file.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    path: PathBuf,
    ctl: Arc<Control>,
    stop: CancellationToken,
) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "admin socket unusable");
            return;
        }
    };
    tracing::info!(path = %path.display(), "admin socket listening");
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, ctl.clone(), stop.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.cancelled() => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn connection(stream: UnixStream, ctl: Arc<Control>, stop: CancellationToken) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::select! {
            n = read_line(&mut lines, &mut line) => n,
            _ = stop.cancelled() => return,
        };
        let failed = n.is_err();
        let out = match n {
            Ok(0) => return,
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => match Request::parse(&line) {
                Ok((req, json)) => ctl.handle(req).await.render(json),
                Err(e) => Response::Error(e).render(line.contains("--json")),
            },
            Err(e) => Response::Error(e.to_string()).render(false),
        };
        if w.write_all(out.as_bytes()).await.is_err() {
            return;
        }
        if failed {
            return;
        }
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut String,
) -> io::Result<usize> {
    let mut limited = r.take(MAX_LINE as u64 + 1);
    let n = limited.read_line(line).await?;
    if line.len() > MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("command longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(n)
}
