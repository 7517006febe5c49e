//! One upstream MySQL/MariaDB connection: connect and authenticate as the configured upstream
//! account (`mysql_native_password`, `caching_sha2_password` with the RSA full-auth exchange),
//! turn on session-state tracking, run the proxy's own commands (replay, reset), and know what
//! session state it holds.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::io::{IoError, PacketReader, PacketWriter};
use super::protocol::auth::{self, CACHING_SHA2_PASSWORD, MYSQL_NATIVE_PASSWORD};
use super::protocol::capabilities::*;
use super::protocol::command::{
    self, COM_INIT_DB, COM_PING, COM_QUERY, COM_RESET_CONNECTION, COM_SET_OPTION,
};
use super::protocol::handshake::{AuthMoreData, AuthReply, HandshakeResponse41, HandshakeV10};
use super::protocol::response::{ErrPacket, SessionStateChange};
use super::protocol::tracker::{ResponseEnd, ResponseTracker, TrackerEvent};
use super::state::{Replay, Replayable};

/// What the proxy asks of every upstream connection (and, with a few more, offers clients:
/// `frontend::OFFERED`). Session tracking and `DEPRECATE_EOF` are
/// always on (the relay translates for clients without them); multi-statements are negotiated
/// and then switched per client with `COM_SET_OPTION`; `FOUND_ROWS` changes what the server
/// counts, so it is part of the pool key instead.
pub const WANTED: u64 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF
    | CLIENT_LOCAL_FILES;

const TRACKING: &str = "SET SESSION session_track_system_variables = '*', session_track_schema = ON, session_track_state_change = ON";

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Connect(#[from] crate::pool::ConnectError),
    /// The upstream refused with its own error (authentication, max_connections, …).
    #[error("upstream {addr} refused: {} ({})", err.message, err.code)]
    Refused { addr: String, err: ErrPacket },
    #[error("upstream {addr}: {cause}")]
    Io { addr: String, cause: String },
    /// A command the proxy itself sent failed (replaying state, resetting).
    #[error("upstream {addr} rejected the proxy's {what}: {} ({})", err.message, err.code)]
    Command {
        addr: String,
        what: &'static str,
        err: ErrPacket,
    },
}

impl UpstreamError {
    /// The upstream's own error, when there is one (e.g. 1040 Too many connections).
    pub fn upstream_err(&self) -> Option<&ErrPacket> {
        match self {
            UpstreamError::Refused { err, .. } | UpstreamError::Command { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// What connecting taught us about the server (the proxy's own handshake repeats it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub version: String,
    pub charset: u8,
    pub status: u16,
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Login {
    pub addr: String,
    pub user: String,
    pub password: String,
    pub found_rows: bool,
    pub connect_timeout: Duration,
}

pub struct MysqlConn {
    pub reader: PacketReader<OwnedReadHalf>,
    pub writer: PacketWriter<OwnedWriteHalf>,
    pub caps: Capabilities,
    /// The session state this connection holds, relative to a fresh connection.
    pub state: Replayable,
    pub thread_id: u32,
    pub user: String,
    pub found_rows: bool,
    pub addr: String,
    pub created: Instant,
    pub last_used: Instant,
    /// Its state is unknown: close it, never reuse it.
    pub broken: bool,
    /// Statements prepared on this connection, by SQL text.
    pub stmts: super::stmt_cache::StmtCache,
}

impl MysqlConn {
    pub async fn connect(login: &Login) -> Result<(MysqlConn, ServerFacts), UpstreamError> {
        let addr = login.addr.clone();
        let attempt = async {
            let stream = crate::pool::connect_tcp(&addr, login.connect_timeout).await?;
            let (r, w) = stream.into_split();
            let reader = PacketReader::new(r, super::protocol::packet::MAX_CHUNK);
            let mut conn = MysqlConn {
                reader,
                writer: PacketWriter::new(w),
                caps: Capabilities::default(),
                state: Replayable::default(),
                thread_id: 0,
                user: login.user.clone(),
                found_rows: login.found_rows,
                addr: addr.clone(),
                created: Instant::now(),
                last_used: Instant::now(),
                broken: false,
                stmts: Default::default(),
            };
            let facts = conn.login(login).await?;
            conn.setup().await?;
            Ok((conn, facts))
        };
        match tokio::time::timeout(login.connect_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Connect(crate::pool::ConnectError::Timeout {
                addr,
                timeout: login.connect_timeout,
            })),
        }
    }

    async fn login(&mut self, login: &Login) -> Result<ServerFacts, UpstreamError> {
        let greeting = self.reader.read().await.map_err(|e| self.io(e))?;
        if greeting.payload.first() == Some(&0xFF) {
            return Err(self.refused(&greeting.payload));
        }
        let hello = HandshakeV10::decode(&greeting.payload).map_err(|e| self.io(e.into()))?;
        let mut wanted = WANTED;
        if login.found_rows {
            wanted |= CLIENT_FOUND_ROWS;
        }
        self.caps = Capabilities::from_parts(hello.capabilities.lower() & wanted as u32, 0);
        self.thread_id = hello.connection_id;
        let plugin = match hello.auth_plugin.as_str() {
            CACHING_SHA2_PASSWORD => CACHING_SHA2_PASSWORD,
            _ => MYSQL_NATIVE_PASSWORD,
        };
        let response = HandshakeResponse41 {
            capabilities: self.caps,
            max_packet: 1 << 30,
            charset: 45, // utf8mb4_general_ci; clients' own charsets are replayed as variables
            username: login.user.clone(),
            auth_response: scramble(plugin, login.password.as_bytes(), &hello.nonce),
            database: None,
            auth_plugin: Some(plugin.to_string()),
            connect_attrs: Vec::new(),
        };
        self.writer.seq = greeting.seq.wrapping_add(1);
        let mut payload = BytesMut::new();
        response
            .encode(&mut payload)
            .map_err(|e| self.io(e.into()))?;
        self.send(&payload).await?;
        self.authenticate(login, plugin, hello.nonce.to_vec())
            .await?;
        Ok(ServerFacts {
            version: hello.server_version,
            charset: hello.charset,
            status: hello.status,
        })
    }

    /// Follows the server through auth switches and caching_sha2's extra round trips.
    async fn authenticate(
        &mut self,
        login: &Login,
        mut plugin: &'static str,
        mut nonce: Vec<u8>,
    ) -> Result<(), UpstreamError> {
        let password = login.password.as_bytes();
        loop {
            let packet = self.reader.read().await.map_err(|e| self.io(e))?;
            self.writer.seq = packet.seq.wrapping_add(1);
            match AuthReply::decode(&packet.payload, self.caps).map_err(|e| self.io(e.into()))? {
                AuthReply::Ok(_) => return Ok(()),
                AuthReply::Err(err) => {
                    return Err(UpstreamError::Refused {
                        addr: self.addr.clone(),
                        err,
                    });
                }
                AuthReply::Switch(switch) => {
                    plugin = match switch.plugin.as_str() {
                        CACHING_SHA2_PASSWORD => CACHING_SHA2_PASSWORD,
                        MYSQL_NATIVE_PASSWORD => MYSQL_NATIVE_PASSWORD,
                        other => {
                            return Err(self.command_err(
                                "authentication",
                                1251,
                                &format!("the proxy cannot log in with auth plugin {other}"),
                            ));
                        }
                    };
                    nonce = switch.data;
                    let reply = scramble(plugin, password, &nonce);
                    self.send(&reply).await?;
                }
                AuthReply::MoreData(AuthMoreData { data }) if plugin == CACHING_SHA2_PASSWORD => {
                    match data.first() {
                        Some(&auth::CACHING_SHA2_FAST_AUTH_SUCCESS) => {}
                        Some(&auth::CACHING_SHA2_PERFORM_FULL_AUTH) => {
                            // Over plain TCP the password goes RSA-encrypted with the server's key.
                            self.send(&[auth::CACHING_SHA2_REQUEST_PUBLIC_KEY]).await?;
                        }
                        _ => {
                            let pem = String::from_utf8_lossy(&data).into_owned();
                            let encrypted = auth::encrypt_password(&pem, password, &nonce)
                                .map_err(|e| {
                                    self.command_err(
                                        "authentication",
                                        1045,
                                        &format!("RSA key exchange failed: {e}"),
                                    )
                                })?;
                            self.send(&encrypted).await?;
                        }
                    }
                }
                AuthReply::MoreData(_) => {
                    return Err(self.command_err("authentication", 1045, "unexpected auth data"));
                }
            }
        }
    }

    /// Session tracking on, multi-statements off: the state every pooled connection starts in.
    async fn setup(&mut self) -> Result<(), UpstreamError> {
        self.query(TRACKING, "session tracking setup").await?;
        // MariaDB and MySQL 5.7+ have it; older servers just do without transaction state.
        let _ = self
            .query(
                "SET SESSION session_track_transaction_info = 'STATE'",
                "session tracking setup",
            )
            .await;
        self.set_multi_statements(false).await
    }

    async fn set_multi_statements(&mut self, on: bool) -> Result<(), UpstreamError> {
        let option = if on {
            command::MYSQL_OPTION_MULTI_STATEMENTS_ON
        } else {
            command::MYSQL_OPTION_MULTI_STATEMENTS_OFF
        };
        let mut payload = BytesMut::new();
        payload.extend_from_slice(&[COM_SET_OPTION]);
        payload.extend_from_slice(&option.to_le_bytes());
        self.run(&payload, COM_SET_OPTION, "COM_SET_OPTION").await?;
        self.state.multi_statements = on;
        Ok(())
    }

    /// Makes this connection's session match a client's (the difference only). Returns the
    /// state changes the server reported, in its own spelling of the values.
    pub async fn apply(
        &mut self,
        replay: Replay,
    ) -> Result<Vec<SessionStateChange>, UpstreamError> {
        let mut changes = Vec::new();
        if let Some(schema) = &replay.schema {
            let mut payload = BytesMut::new();
            command::write_init_db(&mut payload, schema.as_bytes());
            let end = self
                .run(&payload, COM_INIT_DB, "schema replay (COM_INIT_DB)")
                .await?;
            changes.extend(end.session_state_changes);
            self.state.schema = Some(schema.clone());
        }
        if let Some(set) = &replay.set {
            let end = self.query(set, "variable replay (SET SESSION)").await?;
            changes.extend(end.session_state_changes);
        }
        let _ = super::state::apply_changes(&changes, &mut Replayable::default(), &mut self.state);
        if let Some(on) = replay.multi_statements {
            self.set_multi_statements(on).await?;
        }
        Ok(changes)
    }

    /// `COM_RESET_CONNECTION`: rolls back, drops temporary tables, user variables, prepared
    /// statements and locks; then tracking is turned on again. The schema stays.
    pub async fn reset(&mut self) -> Result<(), UpstreamError> {
        self.run(
            &[COM_RESET_CONNECTION],
            COM_RESET_CONNECTION,
            "reset (COM_RESET_CONNECTION)",
        )
        .await?;
        let schema = self.state.schema.take();
        self.state = Replayable {
            schema,
            ..Replayable::default()
        };
        self.stmts.clear();
        self.setup().await
    }

    /// The first row's column `col` of a query's result, as a number (for the control plane's
    /// samples of the server's load).
    pub async fn query_value(&mut self, sql: &str, col: usize) -> Result<u64, String> {
        use super::protocol::packet::Reader;
        use super::protocol::tracker::PacketRole;
        let mut payload = BytesMut::new();
        command::write_query(&mut payload, sql.as_bytes(), self.caps);
        self.writer.seq = 0;
        self.send(&payload).await.map_err(|e| e.to_string())?;
        let mut tracker = ResponseTracker::new(COM_QUERY, self.caps);
        let (mut in_rows, mut value) = (false, None);
        loop {
            let packet = self
                .reader
                .read()
                .await
                .map_err(|e| self.io(e).to_string())?;
            let p = &packet.payload;
            match tracker.role_of(p.first().copied().unwrap_or(0), p.len()) {
                PacketRole::LastDefinition => in_rows = true,
                PacketRole::Other if in_rows && value.is_none() => {
                    let mut r = Reader::new(p);
                    for _ in 0..col {
                        let _ = r.lenenc_bytes("column");
                    }
                    value = r
                        .lenenc_bytes("column")
                        .ok()
                        .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok());
                }
                _ => {}
            }
            match tracker.feed(p).map_err(|e| e.to_string())? {
                TrackerEvent::Done(end) => {
                    if let Some(err) = end.error {
                        return Err(err.message);
                    }
                    return value.ok_or_else(|| format!("{sql}: no numeric value"));
                }
                TrackerEvent::Continue => {}
                _ => return Err(format!("{sql}: unexpected response")),
            }
        }
    }

    /// An idle connection has nothing to say: EOF or stray bytes waiting on it mean the upstream
    /// closed it (a restart, its wait_timeout) and it must not be handed to a client.
    pub fn peer_closed(&self) -> bool {
        if self.reader.has_buffered() {
            return true;
        }
        let mut probe = [0u8; 1];
        !matches!(self.reader.get_ref().try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// `COM_STMT_PREPARE` for the proxy's own use (a client's statement on a connection that
    /// has not seen it yet); the metadata packets are not needed and are skipped.
    pub async fn prepare(&mut self, sql: &[u8]) -> Result<(u32, u16), UpstreamError> {
        let mut payload = BytesMut::new();
        command::write_stmt_prepare(&mut payload, sql);
        let end = self
            .run(&payload, command::COM_STMT_PREPARE, "statement re-prepare")
            .await?;
        let ok = end.prepared.ok_or_else(|| {
            self.command_err(
                "statement re-prepare",
                1105,
                "no statement id in the answer",
            )
        })?;
        Ok((ok.stmt_id, ok.params))
    }

    /// `COM_STMT_CLOSE` (the server sends nothing back).
    pub async fn close_statement(&mut self, id: u32) -> Result<(), UpstreamError> {
        let mut payload = BytesMut::new();
        command::write_stmt_id_command(&mut payload, command::COM_STMT_CLOSE, id);
        self.writer.seq = 0;
        self.send(&payload).await
    }

    /// `COM_QUIT`, then waits (briefly) for the server to close its end, so that the
    /// connection has left the server's count when this returns.
    pub async fn quit(mut self: Box<Self>) {
        self.writer.seq = 0;
        if self.send(&[command::COM_QUIT]).await.is_err() {
            return;
        }
        let drained = async { while self.reader.read().await.is_ok() {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
    }

    pub async fn rollback(&mut self) -> Result<(), UpstreamError> {
        self.query("ROLLBACK", "rollback").await.map(|_| ())
    }

    /// `COM_PING`: its OK carries the status flags (is a transaction open?).
    pub async fn status(&mut self) -> Result<u16, UpstreamError> {
        let end = self
            .run(&[COM_PING], COM_PING, "status check (COM_PING)")
            .await?;
        Ok(end.status.unwrap_or(0))
    }

    pub async fn query(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> Result<ResponseEnd, UpstreamError> {
        let mut payload = BytesMut::new();
        command::write_query(&mut payload, sql.as_bytes(), self.caps);
        self.run(&payload, COM_QUERY, what).await
    }

    /// Sends one of the proxy's own commands and reads its whole response (result rows, if
    /// any, are discarded).
    async fn run(
        &mut self,
        payload: &[u8],
        cmd: u8,
        what: &'static str,
    ) -> Result<ResponseEnd, UpstreamError> {
        self.writer.seq = 0;
        self.send(payload).await?;
        let mut tracker = ResponseTracker::new(cmd, self.caps);
        loop {
            let packet = self.reader.read().await.map_err(|e| self.io(e))?;
            match tracker
                .feed(&packet.payload)
                .map_err(|e| self.io(e.into()))?
            {
                TrackerEvent::Done(end) => {
                    return match end.error {
                        Some(err) => Err(UpstreamError::Command {
                            addr: self.addr.clone(),
                            what,
                            err,
                        }),
                        None => Ok(end),
                    };
                }
                TrackerEvent::Continue => {}
                TrackerEvent::LocalInfile | TrackerEvent::NeedsAuthExchange => {
                    self.broken = true;
                    return Err(self.command_err(what, 1105, "unexpected response"));
                }
            }
        }
    }

    pub async fn send(&mut self, payload: &[u8]) -> Result<(), UpstreamError> {
        let r = async {
            self.writer.send(payload).await?;
            self.writer.flush().await
        }
        .await;
        r.map_err(|e| self.io(e))
    }

    pub fn io(&mut self, e: IoError) -> UpstreamError {
        self.broken = true;
        UpstreamError::Io {
            addr: self.addr.clone(),
            cause: match e {
                IoError::Closed => "connection closed by the upstream".into(),
                other => other.to_string(),
            },
        }
    }

    fn refused(&mut self, payload: &[u8]) -> UpstreamError {
        self.broken = true;
        match ErrPacket::decode(payload) {
            Ok(err) => UpstreamError::Refused {
                addr: self.addr.clone(),
                err,
            },
            Err(e) => self.io(e.into()),
        }
    }

    fn command_err(&mut self, what: &'static str, code: u16, message: &str) -> UpstreamError {
        self.broken = true;
        UpstreamError::Command {
            addr: self.addr.clone(),
            what,
            err: ErrPacket::new(code, b"HY000", message),
        }
    }
}

/// The auth response for `plugin`.
fn scramble(plugin: &str, password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    match plugin {
        CACHING_SHA2_PASSWORD => auth::sha2_scramble(password, nonce).to_vec(),
        _ => auth::native_scramble(password, nonce).to_vec(),
    }
}
