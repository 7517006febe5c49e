//! `tidepool admin`: sends one command to the admin socket and prints the answer as the daemon
//! rendered it (so `socat` users and CLI users see the same thing).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::Request;

/// Sends `words` as one command; returns the response text and whether it reports an error.
pub fn call(socket: &Path, words: &[String], json: bool) -> Result<(String, bool), String> {
    let (req, json_word) = Request::parse(&words.join(" "))?;
    let json = json || json_word;
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot connect to the admin socket {}: {e}",
            socket.display()
        )
    })?;
    // `pause` waits for open transactions, up to the drain timeout.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
    let line = format!("{}\n", req.to_line(json));
    stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .map_err(|e| format!("cannot send to {}: {e}", socket.display()))?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .map_err(|e| format!("cannot read the answer from {}: {e}", socket.display()))?;
    let failed = if json {
        out.starts_with("{\"error\"")
    } else {
        out.starts_with("error: ")
    };
    Ok((out, failed))
}
