//! One task per Redis client: read commands, decide where each runs, relay the answers in the
//! order the commands came.
//!
//! Order is kept by `pending`, one slot per run of commands: `Waiting(n)` for `n` replies to come
//! from an upstream, `Ready(bytes)` for answers the proxy made itself. Upstream replies arrive
//! in order, so they always belong to the front slot; each slot is written to the client once
//! everything before it has been.
//!
//! A client runs on shared lanes until it needs a connection of its own (see `command::route`);
//! then it waits for its outstanding replies, takes a dedicated connection and runs
//! `dedicated_mode` until its state ends, and comes back.

mod dedicated_mode;
mod local;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::RedisPool;
use super::command::{DedicatedReason, Local, Route};
use super::lane::{Batch, Lane, Reply, ReplyQueue, ReplySender};
use super::resp::{self, Command, CommandParser};
use super::state::ClientState;
use crate::config::Protocol;
use crate::registry::{ErrorKind, SessionHandle, SessionState};
use crate::server::{ClientReader, ClientWriter};
use crate::server::{ClientStream, Peer, Phase};

/// Read this much at a time from a client that is in the middle of a large command or pipeline.
const READ_CHUNK: usize = 16 * 1024;
/// A write buffer drained and larger than this is given back.
const IDLE_WRITE: usize = 1024;

thread_local! {
    /// Where a read lands when its client has nothing buffered (see `read_some`); one per
    /// runtime thread instead of one per client.
    static SCRATCH: RefCell<[u8; READ_CHUNK]> = const { RefCell::new([0; READ_CHUNK]) };
}

/// Serves one client until it leaves, misbehaves, or the proxy stops.
pub async fn serve(
    pool: Arc<RedisPool>,
    stream: ClientStream,
    peer: Peer,
    phase: watch::Receiver<Phase>,
) {
    let (r, w) = stream.into_split();
    let password_required = pool.password_required();
    let parser = CommandParser::new(pool.limits());
    let reg = pool
        .registry
        .register(&pool.entry, Protocol::Redis, &peer, pool.username());
    reg.set_db("0");
    let mut s = Session {
        reg,
        round_started: None,
        pool,
        peer,
        r,
        w,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        parser,
        state: ClientState::new(!password_required),
        pending: VecDeque::new(),
        waiting: 0,
        replies: ReplyQueue::new(),
        lane: None,
        phase,
        closing: None,
    };
    let end = s.run().await;
    tracing::debug!(pool = %s.pool.cfg.name, client = s.peer.id, addr = %s.peer.addr, reason = %end, "client session ended");
}

/// The bytes sent to a client refused before its session starts (e.g. over `max_clients`).
pub fn refusal(msg: &str) -> Bytes {
    let mut out = BytesMut::new();
    resp::encode_error(&mut out, &format!("ERR tidepool: {msg}"));
    out.freeze()
}

enum Slot {
    Waiting(usize),
    Ready(Bytes),
}

/// Why a session ended (for the log).
#[derive(Debug)]
enum End {
    ClientClosed,
    Quit,
    ClientIo(std::io::Error),
    Malformed(String),
    Shutdown,
    UpstreamLostState(String),
    /// The control plane closed the session (`kill`, an idle timeout).
    Closed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClientClosed => f.write_str("client closed the connection"),
            End::Quit => f.write_str("QUIT"),
            End::ClientIo(e) => write!(f, "client socket error: {e}"),
            End::Malformed(e) => write!(f, "malformed input from client: {e}"),
            End::Shutdown => f.write_str("proxy shutting down"),
            End::UpstreamLostState(e) => write!(f, "upstream lost the client's session state: {e}"),
            End::Closed(why) => write!(f, "closed by the proxy: {why}"),
        }
    }
}

struct Session {
    pool: Arc<RedisPool>,
    /// This session's registry entry (removed when the session ends).
    reg: SessionHandle,
    /// When the oldest outstanding command of the current round trip was sent.
    round_started: Option<Instant>,
    peer: Peer,
    r: ClientReader,
    w: ClientWriter,
    rbuf: BytesMut,
    wbuf: BytesMut,
    parser: CommandParser,
    state: ClientState,
    pending: VecDeque<Slot>,
    /// Replies still to come from an upstream (the sum of `Waiting` slots).
    waiting: usize,
    /// Where lanes deliver this client's replies.
    replies: ReplySender,
    /// The lane this client's outstanding replies come from; a client sticks to it while any
    /// are outstanding so that its replies stay in order.
    lane: Option<Arc<Lane>>,
    phase: watch::Receiver<Phase>,
    /// Set when the session is to end once `wbuf` is written out.
    closing: Option<End>,
}

/// Commands taken from the front of `rbuf` to go to a lane together.
#[derive(Default)]
struct Run {
    len: usize,
    n: usize,
}

impl Session {
    async fn run(&mut self) -> End {
        let mut phase_open = true;
        loop {
            if let Some(end) = self.finished() {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(1), self.flush_all()).await;
                return end;
            }
            let can_read = self.closing.is_none() && self.waiting < self.pool.cfg.max_pipeline;
            self.reg.set_state(if self.waiting > 0 {
                SessionState::Active
            } else {
                SessionState::Idle
            });
            tokio::select! {
                biased;
                Some(reply) = self.replies.recv() => self.on_reply(reply),
                r = self.w.write_buf(&mut self.wbuf), if !self.wbuf.is_empty() => match r {
                    Ok(n) => {
                        self.reg.sent(n as u64);
                        if self.wbuf.is_empty() && self.wbuf.capacity() > IDLE_WRITE {
                            self.wbuf = BytesMut::new();
                        }
                    }
                    Err(e) => return End::ClientIo(e),
                },
                r = read_some(&mut self.r, &mut self.rbuf), if can_read => match r {
                    Ok(0) => return End::ClientClosed,
                    Ok(n) => {
                        self.reg.received(0, n as u64);
                        self.process_input().await
                    }
                    Err(e) => return End::ClientIo(e),
                },
                _ = self.reg.closed(), if self.closing.is_none() => self.on_closed(),
                r = self.phase.changed(), if phase_open => match r {
                    Ok(()) => self.on_phase(),
                    // The proxy can no longer stop this session; it ends with its client.
                    Err(_) => phase_open = false,
                },
            }
        }
    }

    /// The session ends when it was told to and everything owed to the client is written.
    fn finished(&mut self) -> Option<End> {
        let phase = *self.phase.borrow();
        if self.closing.is_none() && phase != Phase::Running && self.pending.is_empty() {
            self.closing = Some(End::Shutdown);
        }
        if self.closing.is_some() && self.pending.is_empty() && self.wbuf.is_empty() {
            return self.closing.take();
        }
        None
    }

    /// The control plane closed this session. A client with a command outstanding or state on
    /// its upstream (MULTI, WATCH, a subscription) is told why in an error frame; an idle
    /// client holding nothing is just closed, as Redis itself does for `timeout` and
    /// `CLIENT KILL`.
    fn on_closed(&mut self) {
        let why = self
            .reg
            .close_reason()
            .map_or_else(|| "closed".to_string(), |r| r.message);
        let msg = format!("ERR tidepool: {why}");
        if self.waiting > 0 {
            let owed = self.waiting;
            self.fail_waiting(owed, &msg);
        } else if self.state.holds_upstream() {
            resp::encode_error(&mut self.wbuf, &msg);
        }
        self.rbuf.clear();
        self.closing = Some(End::Closed(why));
    }

    fn on_phase(&mut self) {
        if *self.phase.borrow() == Phase::Closing {
            // Past the drain deadline: answer what is still owed and go.
            let owed = self.waiting;
            self.fail_waiting(owed, "ERR tidepool: proxy is shutting down");
            self.closing.get_or_insert(End::Shutdown);
        }
    }

    async fn flush_all(&mut self) {
        while !self.wbuf.is_empty() {
            if self.w.write_buf(&mut self.wbuf).await.is_err() {
                return;
            }
        }
        let _ = self.w.flush().await;
    }

    /// Handles every complete command in the read buffer.
    async fn process_input(&mut self) {
        let mut run = Run::default();
        let mut last = LastCommand::default();
        let mut malformed = None;
        while self.closing.is_none() && self.waiting + run.n < self.pool.cfg.max_pipeline {
            // The error is answered after the loop: awaiting inside this match would keep the
            // parse result (a whole `Command`) in every session's future.
            let cmd = match self.parser.parse(&self.rbuf[run.len..]) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    malformed = Some(e);
                    break;
                }
            };
            if cmd.argc() == 0 {
                // Empty commands get no reply from Redis either.
                if cmd.inline || run.n == 0 {
                    self.flush_run(&mut run).await;
                    self.rbuf.advance(cmd.len);
                } else {
                    run.len += cmd.len;
                }
                continue;
            }
            let frame_start = run.len;
            let route = {
                let frame = &self.rbuf[frame_start..frame_start + cmd.len];
                last.record(&cmd, frame);
                self.route(&cmd, frame)
            };
            match route {
                Route::Shared if !cmd.inline => {
                    run.len += cmd.len;
                    run.n += 1;
                }
                Route::Shared => {
                    self.flush_run(&mut run).await;
                    let bytes = reencode(&cmd, &self.rbuf[..cmd.len]);
                    self.rbuf.advance(cmd.len);
                    self.send_to_lane(bytes, 1).await;
                }
                Route::Dedicated(DedicatedReason::Multi) if !cmd.inline => {
                    if let Some((len, n)) = self.whole_transaction(frame_start, &cmd) {
                        run.len += len;
                        run.n += n;
                    } else {
                        self.flush_run(&mut run).await;
                        // The dedicated connection counts the command that sent it there.
                        last.count -= 1;
                        last.report(&self.reg);
                        Box::pin(self.enter_dedicated(DedicatedReason::Multi)).await;
                    }
                }
                Route::Dedicated(reason) => {
                    self.flush_run(&mut run).await;
                    last.count -= 1;
                    last.report(&self.reg);
                    Box::pin(self.enter_dedicated(reason)).await;
                }
                Route::Local(local) => {
                    self.flush_run(&mut run).await;
                    let frame = self.rbuf.split_to(cmd.len);
                    Box::pin(self.answer_local(local, &cmd, &frame)).await;
                }
                Route::Refused(_) | Route::NoAuth => {
                    self.flush_run(&mut run).await;
                    self.rbuf.advance(cmd.len);
                    self.push_refusal(&route);
                }
            }
        }
        self.flush_run(&mut run).await;
        last.report(&self.reg);
        if let Some(e) = malformed {
            self.reg.error(ErrorKind::ClientProtocol);
            let mut out = BytesMut::new();
            resp::encode_error(&mut out, &format!("ERR Protocol error: {e}"));
            self.push_local(out.freeze());
            self.closing = Some(End::Malformed(e.to_string()));
            return;
        }
        self.shrink_buffers();
    }

    /// Where a command runs for this client, after authentication and `allow_commands`.
    fn route(&self, cmd: &Command, frame: &[u8]) -> Route {
        let route = super::command::route(cmd, frame);
        if !self.state.authenticated
            && !matches!(
                route,
                Route::Local(Local::Auth | Local::Hello | Local::Quit | Local::Reset)
            )
        {
            return Route::NoAuth;
        }
        match route {
            Route::Refused(r)
                if r.allowable
                    && self
                        .pool
                        .cfg
                        .redis
                        .as_ref()
                        .is_some_and(|c| c.allow_commands.iter().any(|a| a == r.name)) =>
            {
                Route::Shared
            }
            other => other,
        }
    }

    /// `MULTI ... EXEC` that arrived whole and contains only plain commands can be written
    /// to a shared lane contiguously. Returns its (bytes, commands).
    fn whole_transaction(&self, start: usize, multi: &Command) -> Option<(usize, usize)> {
        let mut parser = CommandParser::new(self.pool.limits());
        let mut len = multi.len;
        let mut n = 1;
        loop {
            let cmd = parser.parse(&self.rbuf[start + len..]).ok()??;
            let frame = &self.rbuf[start + len..start + len + cmd.len];
            if cmd.inline || cmd.argc() == 0 {
                return None;
            }
            len += cmd.len;
            n += 1;
            if cmd.name_is(frame, "EXEC") || cmd.name_is(frame, "DISCARD") {
                return Some((len, n));
            }
            if self.route(&cmd, frame) != Route::Shared {
                return None;
            }
        }
    }

    async fn flush_run(&mut self, run: &mut Run) {
        if run.len == 0 {
            return;
        }
        // The whole buffer freezes without the shared header a split would allocate.
        let bytes = if run.len == self.rbuf.len() {
            std::mem::take(&mut self.rbuf).freeze()
        } else {
            self.rbuf.split_to(run.len).freeze()
        };
        let n = std::mem::take(&mut run.n);
        run.len = 0;
        if n > 0 {
            self.send_to_lane(bytes, n).await;
        }
    }

    /// Sends `n` commands to this client's lane (choosing one if it has none in use).
    async fn send_to_lane(&mut self, bytes: Bytes, n: usize) {
        let lane = match &self.lane {
            Some(l) if self.waiting > 0 => {
                l.reserve(n);
                l.clone()
            }
            _ => {
                // Pausing is rare; boxed, its wait does not weigh on every session's future.
                if self.pool.entry.is_paused() {
                    if let Err(e) = Box::pin(self.pool.entry.admit(&self.reg)).await {
                        self.push_errors(n, &format!("ERR tidepool: {e}"));
                        return;
                    }
                }
                let (db, resp3) = (self.state.db, self.state.resp3);
                let picked = match self.pool.try_pick_lane(db, resp3, n) {
                    Some(l) => {
                        self.pool.entry.stats.acquire_wait.record(Duration::ZERO);
                        Ok(l)
                    }
                    None => {
                        let started = Instant::now();
                        let picked = self.pool.pick_lane(db, resp3, n).await;
                        self.pool.entry.stats.acquire_wait.record(started.elapsed());
                        picked
                    }
                };
                match picked {
                    Ok(l) => l,
                    Err(e) => {
                        self.reg.error(acquire_error_kind(&e));
                        self.push_errors(n, &format!("ERR tidepool: {e}"));
                        return;
                    }
                }
            }
        };
        let batch = Batch {
            bytes,
            n,
            db: self.state.db,
            resp3: self.state.resp3,
            reply: self.replies.clone(),
        };
        if lane.send(batch).is_err() {
            self.push_errors(n, "ERR tidepool: upstream connection lost");
            return;
        }
        self.lane = Some(lane);
        self.push_waiting(n);
    }

    async fn answer_local(&mut self, local: Local, cmd: &Command, frame: &[u8]) {
        let mut out = BytesMut::new();
        let facts = if local::needs_facts(local) {
            match self.pool.facts().await {
                Ok(f) => Some(f),
                Err(e) => {
                    resp::encode_error(&mut out, &format!("ERR tidepool: {e}"));
                    self.push_local(out.freeze());
                    return;
                }
            }
        } else {
            None
        };
        let pool = self.pool.clone();
        let check = |u: Option<&[u8]>, p: &[u8]| pool.credentials_ok(u, p);
        let ctx = local::Ctx {
            peer: &self.peer,
            password_required: self.pool.password_required(),
            username: self.pool.username(),
            facts: facts.as_ref(),
            check_credentials: &check,
        };
        let db = self.state.db;
        if local::answer(local, cmd, frame, &mut self.state, &ctx, &mut out) == local::After::Close
        {
            self.closing = Some(End::Quit);
        }
        if self.state.db != db {
            self.reg.set_db(&self.state.db.to_string());
        }
        self.push_local(out.freeze());
    }

    fn push_waiting(&mut self, n: usize) {
        if self.waiting == 0 {
            self.round_started = Some(Instant::now());
        }
        self.waiting += n;
        match self.pending.back_mut() {
            Some(Slot::Waiting(k)) => *k += n,
            _ => self.pending.push_back(Slot::Waiting(n)),
        }
    }

    /// An answer the proxy made: written now, or queued behind replies still to come.
    fn push_local(&mut self, bytes: Bytes) {
        if self.pending.is_empty() {
            self.wbuf.extend_from_slice(&bytes);
        } else {
            self.pending.push_back(Slot::Ready(bytes));
        }
    }

    /// The error for a refused command or an unauthenticated client.
    fn push_refusal(&mut self, route: &Route) {
        self.reg.error(match route {
            Route::Refused(_) => ErrorKind::Refused,
            _ => ErrorKind::Auth,
        });
        let mut out = BytesMut::new();
        match route {
            Route::Refused(r) => {
                let hint = if r.allowable {
                    " (the pool's allow_commands can allow it)"
                } else {
                    ""
                };
                resp::encode_error(
                    &mut out,
                    &format!(
                        "ERR tidepool: {} is not supported through the proxy{hint}",
                        r.name
                    ),
                );
            }
            _ => local::noauth(&mut out),
        }
        self.push_local(out.freeze());
    }

    fn push_errors(&mut self, n: usize, msg: &str) {
        let mut out = BytesMut::new();
        for _ in 0..n {
            resp::encode_error(&mut out, msg);
        }
        self.push_local(out.freeze());
    }

    fn on_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Frames { n, bytes } => {
                self.wbuf.extend_from_slice(&bytes);
                self.answered(n);
            }
            Reply::Failed { n, error } => self.fail_waiting(n, &format!("ERR tidepool: {error}")),
        }
    }

    fn fail_waiting(&mut self, n: usize, msg: &str) {
        for _ in 0..n {
            resp::encode_error(&mut self.wbuf, msg);
        }
        self.answered(n);
    }

    /// `n` replies for the front slot were written; release what follows it.
    fn answered(&mut self, mut n: usize) {
        self.waiting -= n.min(self.waiting);
        while n > 0 {
            match self.pending.front_mut() {
                Some(Slot::Waiting(k)) => {
                    let take = n.min(*k);
                    *k -= take;
                    n -= take;
                    if *k == 0 {
                        self.pending.pop_front();
                    }
                }
                _ => break,
            }
            while let Some(Slot::Ready(_)) = self.pending.front() {
                if let Some(Slot::Ready(b)) = self.pending.pop_front() {
                    self.wbuf.extend_from_slice(&b);
                }
            }
        }
        if self.waiting == 0 {
            self.lane = None;
            if let Some(t) = self.round_started.take() {
                self.pool.entry.stats.latency.record(t.elapsed());
            }
        }
    }

    /// Waits until every outstanding reply has arrived (before a client changes connection).
    async fn wait_for_replies(&mut self) {
        while self.waiting > 0 {
            tokio::select! {
                Some(reply) = self.replies.recv() => self.on_reply(reply),
                r = self.w.write_buf(&mut self.wbuf), if !self.wbuf.is_empty() => {
                    if let Err(e) = r {
                        self.closing = Some(End::ClientIo(e));
                        return;
                    }
                }
            }
        }
    }

    /// An idle client should own almost nothing: once drained, the read buffer (or what is left
    /// of it after the commands were split off) goes back.
    fn shrink_buffers(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
    }
}

/// The last command of a read, kept on the stack (name bytes only) and reported to the
/// registry once per read rather than once per command.
#[derive(Default)]
struct LastCommand {
    name: [u8; 32],
    len: usize,
    args: usize,
    count: u64,
}

impl LastCommand {
    fn record(&mut self, cmd: &Command, frame: &[u8]) {
        let name = cmd.arg(frame, 0);
        self.len = name.len().min(self.name.len());
        self.name[..self.len].copy_from_slice(&name[..self.len]);
        self.args = cmd.argc() - 1;
        self.count += 1;
    }

    /// Reports what was recorded since the last report.
    fn report(&mut self, reg: &SessionHandle) {
        if self.count > 0 {
            reg.received(self.count, 0);
            reg.statement_command(&self.name[..self.len], self.args);
            self.count = 0;
        }
    }
}

fn acquire_error_kind(e: &crate::pool::AcquireError) -> ErrorKind {
    match e {
        crate::pool::AcquireError::Exhausted { .. } => ErrorKind::AcquireTimeout,
        crate::pool::AcquireError::Unavailable { .. } => ErrorKind::UpstreamUnavailable,
    }
}

/// An inline command becomes a RESP array for the upstream.
fn reencode(cmd: &Command, frame: &[u8]) -> Bytes {
    let args: Vec<&[u8]> = (0..cmd.argc()).map(|i| cmd.arg(frame, i)).collect();
    let mut out = BytesMut::new();
    resp::encode_command(&mut out, &args);
    out.freeze()
}

async fn read_some(r: &mut ClientReader, buf: &mut BytesMut) -> std::io::Result<usize> {
    if !buf.is_empty() {
        // A command or pipeline still arriving reads straight into its buffer.
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        return r.read_buf(buf).await;
    }
    // Nothing buffered: read into the thread's scratch and copy out exactly what came, so an
    // idle client waiting here owns no read buffer at all.
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            std::task::ready!(std::pin::Pin::new(&mut *r).poll_read(cx, &mut rb))?;
            buf.extend_from_slice(rb.filled());
            Poll::Ready(Ok(rb.filled().len()))
        })
    })
    .await
}
