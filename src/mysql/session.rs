//! One task per MySQL client: handshake, then one loop that reads a command, decides where it
//! runs (answered locally, on the client's held upstream, or on any pooled upstream after
//! replaying the client's state), relays the answer, and decides from the response whether the
//! client keeps that upstream (open transaction, pinned state) or gives it back.

mod counters;
mod forward;
mod kill;
mod prepared;

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::frontend::{self, HandshakeError};
use super::io::{IoError, Packet, PacketReader, PacketWriter};
use super::pool::{Checkout, ConnKey, MysqlPool};
use super::protocol::capabilities::*;
use super::protocol::command::{self as cmd, ClientCommand};
use super::protocol::response::{ErrPacket, OkPacket};
use super::state::{PinReason, Replayable, Verb};
use super::upstream::{Login, ServerFacts};
use crate::config::{PoolMode, Protocol};
use crate::pool::AcquireError;
use crate::registry::{SessionHandle, SessionState};
use crate::server::{ClientReader, ClientStream, ClientWriter, Peer, Phase};
use std::time::Instant;

/// The first packet a client over `max_clients` receives.
pub fn refusal(msg: &str) -> bytes::Bytes {
    let mut payload = bytes::BytesMut::new();
    ErrPacket::new(
        1040,
        b"08004",
        format!("Too many connections: tidepool: {msg}"),
    )
    .encode(&mut payload, Capabilities::default());
    let mut out = bytes::BytesMut::new();
    super::protocol::packet::write_packet(&mut out, 0, &payload);
    out.freeze()
}

pub async fn serve(
    pool: Arc<MysqlPool>,
    stream: ClientStream,
    peer: Peer,
    phase: watch::Receiver<Phase>,
) {
    let facts = match Box::pin(upstream_facts(&pool)).await {
        Ok(f) => f,
        Err(err) => return refuse_raw(stream, &err).await,
    };
    let max = pool.live().max_command_bytes;
    let opened = match Box::pin(frontend::open(
        stream,
        pool.tls.as_ref(),
        &facts,
        peer.id as u32,
        max,
        pool.live()
            .mysql
            .as_ref()
            .map_or(std::time::Duration::from_secs(10), |m| m.handshake_timeout),
    ))
    .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(pool = %pool.cfg.name, client = peer.id, addr = %peer.addr, error = %e, "client refused");
            return;
        }
    };
    let frontend::Opened {
        mut reader,
        mut writer,
        nonce,
        response,
        ..
    } = opened;
    // The handshake's futures are boxed: a session task's own size is what every idle client
    // costs for as long as it stays connected.
    let Some(mut session) = Box::pin(Session::start(
        pool,
        &mut reader,
        &mut writer,
        peer,
        phase,
        Greeted {
            facts,
            nonce,
            response,
        },
    ))
    .await
    else {
        writer.shutdown().await;
        return;
    };
    let end = session.run(&mut reader, &mut writer).await;
    Box::pin(session.release_held()).await;
    session.pool.gone(session.peer.id);
    writer.shutdown().await;
    tracing::debug!(pool = %session.pool.cfg.name, client = session.peer.id, reason = %end, "client session ended");
}

/// What the client was greeted with and what it answered.
struct Greeted {
    facts: ServerFacts,
    nonce: [u8; super::protocol::auth::NONCE_LEN],
    response: Packet,
}

/// The client's session state, as the proxy tracks it.
#[derive(Debug, Default)]
pub struct ClientState {
    pub replay: Replayable,
    pub pins: BTreeSet<PinReason>,
    pub in_trans: bool,
    pub last_insert_id: u64,
    /// What `ROW_COUNT()` and `FOUND_ROWS()` would say on the client's own connection.
    pub row_count: i64,
    pub found_rows: u64,
    /// The last status flags the client saw.
    pub status: u16,
    default_autocommit: bool,
}

impl ClientState {
    pub fn autocommit(&self) -> bool {
        match self.replay.vars.get("autocommit").map(String::as_str) {
            Some("OFF") | Some("0") => false,
            Some(_) => true,
            None => self.default_autocommit,
        }
    }

    /// Status flags for answers the proxy makes itself.
    fn local_status(&self) -> u16 {
        let mut s = 0;
        if self.in_trans {
            s |= SERVER_STATUS_IN_TRANS;
        }
        if self.autocommit() {
            s |= SERVER_STATUS_AUTOCOMMIT;
        }
        s
    }
}

pub(crate) struct Session {
    pool: Arc<MysqlPool>,
    peer: Peer,
    caps: Capabilities,
    login: Login,
    key: ConnKey,
    state: ClientState,
    held: Option<Checkout>,
    phase: watch::Receiver<Phase>,
    nonce: [u8; super::protocol::auth::NONCE_LEN],
    /// The control plane's handle on this session (state, pin reason, kill).
    reg: SessionHandle,
    /// Whether the registry was last told that an upstream is held.
    reported_held: bool,
    /// The client's user (a `[[pool.users]]` name).
    user: String,
    /// Prepared statements by the ids the proxy gave the client.
    stmts: std::collections::HashMap<u32, prepared::ClientStmt>,
    next_stmt_id: u32,
}

type Reader = PacketReader<ClientReader>;
type Writer = PacketWriter<ClientWriter>;

/// What the loop does after a command.
enum Flow {
    Continue,
    Close(String),
}

impl Session {
    async fn start(
        pool: Arc<MysqlPool>,
        reader: &mut Reader,
        writer: &mut Writer,
        peer: Peer,
        phase: watch::Receiver<Phase>,
        greeted: Greeted,
    ) -> Option<Session> {
        let Greeted {
            facts,
            nonce,
            response,
        } = greeted;
        let host = client_host(&peer);
        let users = pool.live().users.clone();
        let hello = match frontend::authenticate(reader, writer, &response, nonce, &users, &host)
            .await
        {
            Ok(h) => h,
            Err(HandshakeError::Refused(err)) => {
                tracing::info!(pool = %pool.cfg.name, client = peer.id, addr = %peer.addr, error = %err.message, "client refused");
                let seq = writer.seq;
                let _ = send_err(writer, &err, seq).await;
                return None;
            }
            Err(HandshakeError::Io(_)) => return None,
        };
        let found_rows = hello.caps.contains(CLIENT_FOUND_ROWS);
        let login = login_for(&pool, &hello.user, found_rows);
        let reg = pool
            .registry
            .register(&pool.entry, Protocol::Mysql, &peer, &hello.user.user);
        reg.set_db(hello.database.as_deref().unwrap_or(""));
        pool.serving(peer.id, &hello.user.user, None);
        let mut session = Session {
            key: ConnKey {
                user: login.user.clone(),
                found_rows,
            },
            login,
            caps: hello.caps,
            state: ClientState {
                status: facts.status,
                default_autocommit: facts.status & SERVER_STATUS_AUTOCOMMIT != 0,
                ..ClientState::default()
            },
            held: None,
            pool,
            peer,
            phase,
            nonce: hello.nonce,
            reg,
            reported_held: false,
            user: hello.user.user.clone(),
            stmts: Default::default(),
            next_stmt_id: 0,
        };
        session.state.replay.multi_statements = hello.caps.contains(CLIENT_MULTI_STATEMENTS);
        if let Some(vars) = super::charset::names(hello.charset) {
            session.state.replay.vars.extend(vars);
        }
        if let Some(db) = hello.database {
            // Checked now, as the server would at connect (1049 for an unknown database).
            session.state.replay.schema = Some(db);
            if let Err(err) = session.check_schema().await {
                let seq = writer.seq;
                let _ = send_err(writer, &err, seq).await;
                return None;
            }
        }
        let ok = OkPacket {
            status: session.state.status,
            ..OkPacket::default()
        };
        let caps = session.caps;
        writer.send_with(|o| ok.encode(o, caps)).await.ok()?;
        writer.flush().await.ok()?;
        tracing::debug!(pool = %session.pool.cfg.name, client = session.peer.id, user = %session.login.user, "client authenticated");
        Some(session)
    }

    async fn run(&mut self, reader: &mut Reader, writer: &mut Writer) -> String {
        let mut phase_open = true;
        loop {
            if *self.phase.borrow() != Phase::Running && self.held.is_none() {
                // What a server says at shutdown; drivers report it on their next read.
                let err = ErrPacket::new(1053, b"08S01", "tidepool: proxy is shutting down");
                let _ = send_err(writer, &err, 0).await;
                return "proxy shutting down".into();
            }
            let packet = tokio::select! {
                p = reader.read() => p,
                _ = self.reg.closed() => {
                    let why = self.reg.close_reason().map_or_else(|| "closed by the proxy".to_string(), |r| r.message);
                    let err = ErrPacket::new(1927, b"70100", format!("tidepool: {why}"));
                    let _ = send_err(writer, &err, 0).await;
                    return why;
                }
                r = self.phase.changed(), if phase_open => {
                    match r {
                        Err(_) => phase_open = false,
                        Ok(()) if *self.phase.borrow() == Phase::Closing => {
                            let err = ErrPacket::new(1053, b"08S01", "tidepool: proxy is shutting down (drain timeout reached)");
                            let _ = send_err(writer, &err, 0).await;
                            return "drain timeout reached".into();
                        }
                        Ok(()) => {}
                    }
                    continue;
                }
            };
            let packet = match packet {
                Ok(p) => p,
                Err(IoError::Closed) => return "client closed the connection".into(),
                Err(e) => {
                    let err =
                        ErrPacket::new(1105, b"08S01", format!("tidepool: malformed packet: {e}"));
                    let _ = send_err(writer, &err, 0).await;
                    return format!("malformed input from client: {e}");
                }
            };
            writer.seq = packet.seq.wrapping_add(1);
            self.reg.received(1, packet.payload.len() as u64 + 4);
            self.reg.set_state(SessionState::Active);
            let started = Instant::now();
            let written = writer.written;
            // Boxed: a command's future (~2.5 KiB, mostly layout padding around the checkout and
            // the relay) would otherwise be part of every session task, idle ones included.
            let flow = Box::pin(self.command(packet, reader, writer)).await;
            self.pool.entry.stats.latency.record(started.elapsed());
            self.reg.sent(writer.written - written);
            self.report();
            match flow {
                Flow::Continue => {}
                Flow::Close(why) => return why,
            }
        }
    }

    async fn command(&mut self, packet: Packet, reader: &mut Reader, writer: &mut Writer) -> Flow {
        let decoded = ClientCommand::decode(&packet.payload, self.caps);
        let command = match decoded {
            Ok(c) => c,
            Err(e) => {
                let err =
                    ErrPacket::new(1047, b"08S01", format!("tidepool: malformed command: {e}"));
                let _ = send_err(writer, &err, writer.seq).await;
                return Flow::Close(format!("malformed command: {e}"));
            }
        };
        match command {
            ClientCommand::Quit => Flow::Close("COM_QUIT".into()),
            ClientCommand::Ping => self.ok(writer).await,
            ClientCommand::Query { sql, .. } => {
                self.reg.statement_sql(sql);
                let scan = super::state::scan_statement(sql);
                if scan.ends_transaction && self.held.is_none() && !self.state.in_trans {
                    // Nothing to end (SQLAlchemy sends ROLLBACK on every return to its pool).
                    return self.ok(writer).await;
                }
                if scan.verb == Verb::Kill {
                    return Box::pin(self.kill(sql, writer)).await;
                }
                if self.held.is_none()
                    && scan.reads_counter
                    && let Some((counter, name)) = counters::counter_read(sql)
                {
                    return Box::pin(self.answer_counter(writer, counter, &name)).await;
                }
                if scan.verb == Verb::Load
                    && scan.mentions_local
                    && !self.caps.contains(CLIENT_LOCAL_FILES)
                {
                    let err = ErrPacket::new(
                        1148,
                        b"42000",
                        "The used command is not allowed because the client did not enable LOCAL INFILE",
                    );
                    return self.err(writer, err).await;
                }
                self.forward(packet, prepared::Op::Query(scan), reader, writer)
                    .await
            }
            ClientCommand::InitDb(_)
            | ClientCommand::FieldList { .. }
            | ClientCommand::Statistics => {
                self.forward(packet, prepared::Op::Plain, reader, writer)
                    .await
            }
            ClientCommand::StmtPrepare(sql) => {
                let sql = bytes::Bytes::copy_from_slice(sql);
                self.forward(packet, prepared::Op::Prepare(sql), reader, writer)
                    .await
            }
            ClientCommand::StmtExecute { .. }
            | ClientCommand::StmtFetch { .. }
            | ClientCommand::StmtReset(_)
            | ClientCommand::StmtClose(_)
            | ClientCommand::StmtSendLongData { .. } => {
                Box::pin(self.statement(packet, reader, writer)).await
            }
            ClientCommand::ResetConnection => Box::pin(self.reset_connection(writer)).await,
            ClientCommand::SetOption(option) => {
                self.state.replay.multi_statements =
                    option == cmd::MYSQL_OPTION_MULTI_STATEMENTS_ON;
                let status = self.state.local_status();
                let caps = self.caps;
                let sent = writer
                    .send_with(|o| counters::terminator(o, caps, status))
                    .await;
                flow(sent.and(writer.flush().await))
            }
            ClientCommand::ChangeUser { .. } => {
                Box::pin(self.change_user(&packet.payload, writer)).await
            }
            ClientCommand::ProcessKill(id) => {
                let sql = format!("KILL {id}");
                Box::pin(self.kill(sql.as_bytes(), writer)).await
            }
            ClientCommand::Other { command, .. } => {
                let err = ErrPacket::new(
                    1047,
                    b"08S01",
                    format!("tidepool: command 0x{command:02x} is not supported through the proxy"),
                );
                self.err(writer, err).await
            }
        }
    }

    /// Tells the registry where the client stands after a command: holding an upstream (in a
    /// transaction, or pinned with the reason) or not.
    fn report(&mut self) {
        let thread = self.held.as_ref().map(|h| h.get().thread_id);
        self.pool.serving(self.peer.id, &self.user, thread);
        if self.held.is_none() {
            if self.reported_held {
                self.reg.upstream_released();
                self.reported_held = false;
            }
            self.reg.set_state(SessionState::Idle);
            return;
        }
        if !self.reported_held {
            self.reg.upstream_acquired();
            self.reported_held = true;
        }
        let reason = match self.state.pins.iter().next() {
            Some(pin) => pin.as_str(),
            None if self.state.in_trans => "transaction",
            None => "session mode",
        };
        // Sessions in session mode hold their upstream by design: not a leak.
        let leakable = self.state.in_trans || !self.state.pins.is_empty();
        self.reg.pin(reason, leakable);
        self.reg
            .set_state(if self.state.pins.is_empty() && self.state.in_trans {
                SessionState::InTransaction
            } else {
                SessionState::Pinned
            });
    }

    /// `COM_CHANGE_USER`: authenticate as another configured user and start a fresh session
    /// (the old one's upstream is reset and given back). A refusal closes the connection, as
    /// the server does.
    async fn change_user(&mut self, payload: &[u8], writer: &mut Writer) -> Flow {
        let host = client_host(&self.peer);
        let change = match frontend::change_user(
            payload,
            self.caps,
            &self.pool.live().users,
            &self.nonce,
            &host,
        ) {
            Ok(c) => c,
            Err(err) => {
                let _ = self.err(writer, err.clone()).await;
                return Flow::Close(format!("COM_CHANGE_USER refused: {}", err.message));
            }
        };
        self.release_held().await;
        self.user = change.user.user.clone();
        self.reg.set_user(&self.user);
        let found_rows = self.key.found_rows;
        self.login = login_for(&self.pool, &change.user, found_rows);
        self.key = ConnKey {
            user: self.login.user.clone(),
            found_rows,
        };
        let multi_statements = self.state.replay.multi_statements;
        self.state = ClientState {
            status: self.state.status,
            default_autocommit: self.state.default_autocommit,
            ..ClientState::default()
        };
        self.state.replay.multi_statements = multi_statements;
        self.stmts.clear();
        if let Some(vars) = change.charset.and_then(super::charset::names) {
            self.state.replay.vars.extend(vars);
        }
        if let Some(db) = change.database {
            self.state.replay.schema = Some(db);
            if let Err(err) = self.check_schema().await {
                let _ = self.err(writer, err.clone()).await;
                return Flow::Close(format!("COM_CHANGE_USER: {}", err.message));
            }
        }
        tracing::debug!(pool = %self.pool.cfg.name, client = self.peer.id, user = %self.login.user, "client changed user");
        self.ok(writer).await
    }

    /// `COM_RESET_CONNECTION`: the client's session starts over (its schema stays).
    async fn reset_connection(&mut self, writer: &mut Writer) -> Flow {
        if let Some(mut held) = self.held.take() {
            match held.conn().reset().await {
                Ok(()) => self.pool.put(held),
                Err(e) => {
                    tracing::warn!(pool = %self.pool.cfg.name, client = self.peer.id, error = %e, "reset failed; upstream connection closed")
                }
            }
        }
        let schema = self.state.replay.schema.take();
        let multi = self.state.replay.multi_statements;
        self.state.replay = Replayable {
            schema,
            multi_statements: multi,
            ..Replayable::default()
        };
        self.state.pins.clear();
        self.state.in_trans = false;
        self.state.last_insert_id = 0;
        self.stmts.clear();
        self.ok(writer).await
    }

    async fn check_schema(&mut self) -> Result<(), ErrPacket> {
        let mut checkout = self.checkout().await?;
        let replay = super::state::replay(&self.state.replay, &checkout.get().state, None);
        match checkout.conn().apply(replay).await {
            Ok(changes) => {
                let _ = super::state::apply_changes(
                    &changes,
                    &mut self.state.replay,
                    &mut Replayable::default(),
                );
                self.pool.put(checkout);
                Ok(())
            }
            Err(e) => {
                let err = e
                    .upstream_err()
                    .cloned()
                    .unwrap_or_else(|| ErrPacket::new(1105, b"HY000", format!("tidepool: {e}")));
                self.pool.put(checkout);
                Err(err)
            }
        }
    }

    async fn ok(&mut self, writer: &mut Writer) -> Flow {
        let ok = OkPacket {
            status: self.state.local_status(),
            ..OkPacket::default()
        };
        let caps = self.caps;
        flow(
            async {
                writer.send_with(|o| ok.encode(o, caps)).await?;
                writer.flush().await
            }
            .await,
        )
    }

    async fn err(&mut self, writer: &mut Writer, err: ErrPacket) -> Flow {
        let seq = writer.seq;
        flow(send_err(writer, &err, seq).await)
    }

    /// Gives back a held upstream when the client leaves: reset if it holds pinned state,
    /// rolled back if a transaction is open; closed if that fails.
    async fn release_held(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        let conn = held.conn();
        let cleaned = if !self.state.pins.is_empty() || self.pool.cfg.mode == PoolMode::Session {
            conn.reset().await
        } else if self.state.in_trans {
            conn.rollback().await
        } else {
            Ok(())
        };
        match cleaned {
            Ok(()) => self.pool.put(held),
            Err(e) => {
                tracing::warn!(pool = %self.pool.cfg.name, client = self.peer.id, error = %e, "could not clean the upstream connection; closed it")
            }
        }
    }
}

fn flow(r: Result<(), IoError>) -> Flow {
    match r {
        Ok(()) => Flow::Continue,
        Err(e) => Flow::Close(format!("client socket: {e}")),
    }
}

/// What the upstream says about itself (the greeting repeats it).
async fn upstream_facts(pool: &MysqlPool) -> Result<ServerFacts, ErrPacket> {
    let live = pool.live();
    let user = live
        .users
        .first()
        .ok_or_else(|| ErrPacket::new(1045, b"28000", "tidepool: the pool has no users"))?;
    pool.facts(&login_for(pool, user, false))
        .await
        .map_err(|e| {
            tracing::warn!(pool = %pool.cfg.name, error = %e, "cannot greet a client: no upstream");
            acquire_err(&e)
        })
}

/// Tells a client that arrived while no upstream can be reached why, in place of a greeting
/// (as a server does when it cannot take a connection).
async fn refuse_raw(mut stream: ClientStream, err: &ErrPacket) {
    use tokio::io::AsyncWriteExt;
    let mut payload = bytes::BytesMut::new();
    err.encode(
        &mut payload,
        Capabilities::from_parts(CLIENT_PROTOCOL_41 as u32, 0),
    );
    let mut out = bytes::BytesMut::new();
    super::protocol::packet::write_packet(&mut out, 0, &payload);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// The client's host as MySQL names it in errors (`'app'@'127.0.0.1'`).
fn client_host(peer: &Peer) -> String {
    match peer.addr.rsplit_once(':') {
        Some((host, _)) => host.trim_matches(['[', ']']).to_string(),
        None => "localhost".to_string(),
    }
}

fn login_for(pool: &MysqlPool, user: &crate::config::UserConfig, found_rows: bool) -> Login {
    Login {
        addr: pool.cfg.upstream.clone(),
        user: user.upstream_user.clone(),
        password: user.upstream_password.expose().to_string(),
        found_rows,
        connect_timeout: pool.live().connect_timeout,
    }
}

async fn send_err(writer: &mut Writer, err: &ErrPacket, seq: u8) -> Result<(), IoError> {
    writer.seq = seq;
    writer
        .send_with(|o| err.encode(o, Capabilities::from_parts(CLIENT_PROTOCOL_41 as u32, 0)))
        .await?;
    writer.flush().await
}

/// What a client is told when it cannot get an upstream connection.
fn acquire_err(e: &AcquireError) -> ErrPacket {
    match e {
        AcquireError::Exhausted { .. } => ErrPacket::new(
            1040,
            b"08004",
            format!("Too many connections: tidepool: {e}"),
        ),
        AcquireError::Unavailable { .. } => {
            ErrPacket::new(1105, b"HY000", format!("tidepool: {e}"))
        }
    }
}
