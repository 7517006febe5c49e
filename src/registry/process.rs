//! Which local process owns a client's socket, from `/proc`: for TCP, the client's address:port
//! is the *local* address of a socket in `/proc/net/tcp{,6}`, whose inode some process holds as
//! an fd `socket:[inode]`; for Unix sockets the pid comes from SO_PEERCRED at accept. Looked up
//! only when an operator asks (walking `/proc/*/fd` costs milliseconds), and only for loopback
//! peers — a remote peer's process is not on this machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The command line, arguments joined by spaces; empty if it could not be read.
    pub cmdline: String,
}

/// The process `pid` with its command line.
pub fn describe(pid: u32) -> ProcessInfo {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.join(" ")
        })
        .unwrap_or_default();
    let mut cmdline = cmdline;
    if cmdline.len() > 200 {
        let mut cut = 200;
        while !cmdline.is_char_boundary(cut) {
            cut -= 1;
        }
        cmdline.truncate(cut);
        cmdline.push('…');
    }
    ProcessInfo { pid, cmdline }
}

/// The local process owning the TCP client socket at `addr` (`ip:port`), if it is on loopback.
pub fn owner_of_tcp_peer(addr: &str) -> Option<ProcessInfo> {
    let addr: SocketAddr = addr.parse().ok()?;
    if !addr.ip().is_loopback() {
        return None;
    }
    let table = if addr.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    let inode = inode_of_local(&text, addr)?;
    pid_holding_socket(Path::new("/proc"), inode).map(describe)
}

/// Finds the inode of the socket whose local address is `addr` in a `/proc/net/tcp{,6}` table.
pub(super) fn inode_of_local(table: &str, addr: SocketAddr) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let local = parse_proc_addr(cols.get(1)?)?;
        let inode: u64 = cols.get(9)?.parse().ok()?;
        (local == addr && inode != 0).then_some(inode)
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits + port (IPv6). The kernel prints each 32-bit word
/// of the address in host byte order, so on little-endian machines every word is reversed.
fn parse_proc_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(if cfg!(target_endian = "little") {
            w.to_le_bytes()
        } else {
            w.to_be_bytes()
        })
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The first process under `proc_root` with an fd that is `socket:[inode]`. Processes we may
/// not inspect (other users') are skipped.
fn pid_holding_socket(proc_root: &Path, inode: u64) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir(proc_root).ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_ipv6_table_addresses() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000:0050"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_proc_addr("zz:1"), None);
    }

    #[test]
    fn finds_the_inode_by_local_address() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 20 4 30 10 -1\n";
        let addr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(inode_of_local(table, addr), Some(4242));
        assert_eq!(
            inode_of_local(table, "127.0.0.1:40960".parse().unwrap()),
            None
        );
    }

    #[test]
    fn finds_this_process_owning_a_loopback_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let found = owner_of_tcp_peer(&client.local_addr().unwrap().to_string())
            .expect("the test's own socket is found");
        assert_eq!(found.pid, std::process::id());
        assert!(!found.cmdline.is_empty());
    }
}
