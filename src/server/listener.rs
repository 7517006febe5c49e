//! Binding listeners (TCP through socket2 for backlog and socket options; Unix sockets with the
//! stale file removed) and the accept loop that enforces `max_clients`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::{Engine, Phase, StartError};
use crate::config::{ListenAddr, PoolConfig};

const BACKLOG: i32 = 1024;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

pub async fn bind(pool: &PoolConfig) -> Result<Listener, StartError> {
    let err = |source| StartError::Listen {
        pool: pool.name.clone(),
        addr: pool.listen.to_string(),
        source,
    };
    match &pool.listen {
        ListenAddr::Tcp(addr) => bind_tcp(*addr).map(Listener::Tcp).map_err(err),
        ListenAddr::Unix(path) => {
            // A socket file left by a previous run would make bind fail; only a socket is removed.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            UnixListener::bind(path)
                .map(|l| Listener::Unix(l, path.clone()))
                .map_err(err)
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Who is on the other end of a client socket.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Proxy-wide unique client id (also what `CLIENT ID` answers).
    pub id: u64,
    /// `ip:port`, or `unix` for Unix-socket clients.
    pub addr: String,
    pub local: String,
    /// Unix-socket clients: the peer process from SO_PEERCRED, taken at accept (the registry
    /// shows it; TCP peers are looked up in /proc only when someone asks).
    pub pid: Option<u32>,
}

pub type ClientReader = Box<dyn AsyncRead + Send + Unpin>;
pub type ClientWriter = Box<dyn AsyncWrite + Send + Unpin>;

pub enum ClientStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Delegates to the socket: the MySQL handshake reads and writes the unsplit stream until it
/// knows whether TLS follows.
impl AsyncRead for ClientStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            ClientStream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl ClientStream {
    pub fn into_split(self) -> (ClientReader, ClientWriter) {
        match self {
            ClientStream::Tcp(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            ClientStream::Unix(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        }
    }
}

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Counts a pool's clients; the slot is released when the session ends.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Acceptor {
    listener: Listener,
    engine: Engine,
    pool: Arc<PoolConfig>,
    phase: watch::Receiver<Phase>,
    tracker: TaskTracker,
    clients: Arc<AtomicUsize>,
    /// Stops this pool's accepting alone (the pool was removed by a reload).
    stop: tokio_util::sync::CancellationToken,
}

impl Acceptor {
    pub fn new(
        listener: Listener,
        engine: Engine,
        pool: Arc<PoolConfig>,
        phase: watch::Receiver<Phase>,
        tracker: TaskTracker,
    ) -> Self {
        Acceptor {
            listener,
            engine,
            pool,
            phase,
            tracker,
            clients: Arc::new(AtomicUsize::new(0)),
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// A token that stops this acceptor (and removes its Unix socket file).
    pub fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    pub async fn run(self) {
        let mut phase = self.phase.clone();
        loop {
            let accepted = tokio::select! {
                r = self.accept() => r,
                _ = phase.wait_for(|p| *p != Phase::Running) => break,
                _ = self.stop.cancelled() => break,
            };
            let (stream, addr, pid) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(pool = %self.pool.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let peer = Peer {
                id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
                addr,
                local: self.listener.describe(),
                pid,
            };
            // The live config: a reload may have changed max_clients.
            let live = self.engine.entry().cfg();
            if self.clients.fetch_add(1, Ordering::Relaxed) >= live.max_clients {
                self.clients.fetch_sub(1, Ordering::Relaxed);
                self.tracker
                    .spawn(refuse(stream, self.engine.clone(), live, peer));
                continue;
            }
            let slot = ClientSlot(self.clients.clone());
            let engine = self.engine.clone();
            let phase = self.phase.clone();
            // One spawn per engine: a task is as large as its future, and one future matching
            // on the engine would make every Redis client's task as large as a MySQL session's
            // (4.6 KiB instead of about 2 KiB per idle client).
            match engine {
                Engine::Redis(pool) => self.tracker.spawn(async move {
                    crate::redis::session::serve(pool, stream, peer, phase).await;
                    drop(slot);
                }),
                Engine::Mysql(pool) => self.tracker.spawn(async move {
                    crate::mysql::session::serve(pool, stream, peer, phase).await;
                    drop(slot);
                }),
            };
        }
        if let Listener::Unix(_, path) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!(pool = %self.pool.name, "stopped accepting");
    }

    async fn accept(&self) -> std::io::Result<(ClientStream, String, Option<u32>)> {
        match &self.listener {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                tune_client_socket(&s);
                Ok((ClientStream::Tcp(s), addr.to_string(), None))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                let pid = s
                    .peer_cred()
                    .ok()
                    .and_then(|c| c.pid())
                    .and_then(|p| u32::try_from(p).ok());
                Ok((ClientStream::Unix(s), "unix".to_string(), pid))
            }
        }
    }
}

fn tune_client_socket(s: &TcpStream) {
    let _ = s.set_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(std::time::Duration::from_secs(60));
    let _ = SockRef::from(s).set_tcp_keepalive(&keepalive);
}

/// Tells a client over `max_clients` why, in its own protocol, then closes.
async fn refuse(stream: ClientStream, engine: Engine, pool: Arc<PoolConfig>, peer: Peer) {
    tracing::warn!(pool = %pool.name, client = peer.id, addr = %peer.addr, max_clients = pool.max_clients, "refused: max_clients reached");
    let msg = format!(
        "max number of clients reached (pool '{}' max_clients = {})",
        pool.name, pool.max_clients
    );
    let bytes = match engine {
        Engine::Redis(_) => crate::redis::session::refusal(&msg),
        Engine::Mysql(_) => crate::mysql::session::refusal(&msg),
    };
    let (_, mut w) = stream.into_split();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = w.write_all(&bytes).await;
        let _ = w.shutdown().await;
    })
    .await;
}
