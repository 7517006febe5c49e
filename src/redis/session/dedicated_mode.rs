//! A client on a dedicated upstream connection: its commands go straight to that connection,
//! replies come back in order, and out-of-band frames (pub/sub messages, RESP3 pushes) are
//! relayed as they come. The connection is given back when the client's state has ended and
//! nothing is outstanding; if the state's end cannot be proven (client gone mid-state, an
//! upstream error) the connection is closed instead of reused.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::command::{DedicatedReason, Local, Route};
use super::super::dedicated::DedicatedConn;
use super::super::resp::{self, FrameInfo, Limits, Value};
use super::super::upstream::RedisConn;
use super::{End, Session, acquire_error_kind, read_some, reencode};
use crate::registry::{ErrorKind, SessionState};
use crate::server::Phase;

/// What a frame from a dedicated connection is to the client.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// Answers the oldest outstanding command.
    Reply,
    /// A (un)subscribe confirmation with the upstream's subscription count.
    Confirmation(usize),
    /// A pub/sub message or other push: relayed, answers nothing.
    Message,
}

impl Session {
    pub(super) async fn enter_dedicated(&mut self, reason: DedicatedReason) {
        // Replies still due from a lane must reach the client before anything this connection
        // answers.
        self.wait_for_replies().await;
        if self.closing.is_some() {
            return;
        }
        if let Err(e) = self.pool.entry.admit(&self.reg).await {
            return self.refuse_next(&format!("ERR tidepool: {e}"));
        }
        self.reg.set_state(SessionState::Waiting);
        let started = std::time::Instant::now();
        // `kill` and the idle timeouts must not wait for a dedicated connection.
        let acquired = tokio::select! {
            r = self.pool.dedicated.acquire() => r,
            _ = self.reg.closed() => {
                let why = self.reg.close_reason().map_or_else(|| "closed".to_string(), |r| r.message);
                // The command that was waiting gets the reason; the session then ends.
                self.refuse_next(&format!("ERR tidepool: {why}"));
                self.rbuf.clear();
                self.closing = Some(End::Closed(why));
                return;
            }
        };
        self.pool.entry.stats.acquire_wait.record(started.elapsed());
        let mut conn = match acquired {
            Ok(c) => c,
            Err(e) => {
                self.reg.error(acquire_error_kind(&e));
                return self.refuse_next(&format!("ERR tidepool: {e}"));
            }
        };
        if let Err(e) = conn.conn.align(self.state.db, self.state.resp3).await {
            self.reg.error(ErrorKind::UpstreamLost);
            return self.refuse_next(&format!("ERR tidepool: {e}"));
        }
        tracing::debug!(pool = %self.pool.cfg.name, client = self.peer.id, reason = reason.as_str(), "dedicated connection taken");
        self.reg.upstream_acquired();
        self.run_dedicated(&mut conn, reason).await;
        self.reg.upstream_released();
        if self.closing.is_some() && (self.waiting > 0 || self.state.holds_upstream()) {
            conn.conn.broken = true;
        }
        tracing::debug!(pool = %self.pool.cfg.name, client = self.peer.id, held = ?conn.since.elapsed(), closed = conn.conn.broken, "dedicated connection given back");
    }

    /// Answers the command at the front of the read buffer with an error (it could not run).
    fn refuse_next(&mut self, msg: &str) {
        if let Ok(Some(cmd)) = self.parser.parse(&self.rbuf) {
            self.rbuf.advance(cmd.len);
        }
        let mut out = BytesMut::new();
        resp::encode_error(&mut out, msg);
        self.push_local(out.freeze());
    }

    async fn run_dedicated(&mut self, conn: &mut DedicatedConn, entered_for: DedicatedReason) {
        let up: &mut RedisConn = &mut conn.conn;
        let mut phase_open = true;
        let mut shown = None;
        loop {
            if let Err(e) = self.forward(up).await {
                return self.upstream_failed(up, e);
            }
            if self.closing.is_some() || (self.waiting == 0 && !self.state.holds_upstream()) {
                return;
            }
            self.report_dedicated_state(entered_for, &mut shown);
            let can_read = self.waiting < self.pool.cfg.max_pipeline;
            tokio::select! {
                r = up.stream.read_buf(&mut up.buf) => match r {
                    Ok(0) => return self.upstream_failed(up, "upstream closed the connection".into()),
                    Ok(_) => if let Err(e) = self.relay(up) {
                        return self.upstream_failed(up, e);
                    },
                    Err(e) => return self.upstream_failed(up, format!("read from upstream failed: {e}")),
                },
                r = self.w.write_buf(&mut self.wbuf), if !self.wbuf.is_empty() => match r {
                    Ok(n) => self.reg.sent(n as u64),
                    Err(e) => return self.client_gone(End::ClientIo(e)),
                },
                r = read_some(&mut self.r, &mut self.rbuf), if can_read => match r {
                    Ok(0) => return self.client_gone(End::ClientClosed),
                    Ok(n) => self.reg.received(0, n as u64),
                    Err(e) => return self.client_gone(End::ClientIo(e)),
                },
                _ = self.reg.closed() => return self.on_closed(),
                r = self.phase.changed(), if phase_open => match r {
                    Ok(()) if *self.phase.borrow() == Phase::Closing => {
                        let owed = self.waiting;
                        self.fail_waiting(owed, "ERR tidepool: proxy is shutting down");
                        self.closing = Some(End::Shutdown);
                        return;
                    }
                    Ok(()) => {}
                    Err(_) => phase_open = false,
                },
            }
            if up.buf.capacity() - up.buf.len() < 1024 {
                up.buf.reserve(16 * 1024);
            }
        }
    }

    /// Tells the registry what holds the connection: a transaction, or a pin with its reason.
    /// Only MULTI and WATCH can leak; subscriptions, tracking and blocking commands are idle by
    /// design.
    fn report_dedicated_state(
        &mut self,
        entered_for: DedicatedReason,
        shown: &mut Option<DedicatedReason>,
    ) {
        let state = if self.waiting > 0 {
            SessionState::Active
        } else if self.state.in_multi {
            SessionState::InTransaction
        } else {
            SessionState::Pinned
        };
        self.reg.set_state(state);
        let reason = self.state.pin_reason().unwrap_or(entered_for);
        if *shown != Some(reason) {
            *shown = Some(reason);
            let leakable = matches!(reason, DedicatedReason::Multi | DedicatedReason::Watch);
            self.reg.pin(reason.as_str(), leakable);
        }
    }

    /// Sends every complete command in the read buffer to the dedicated connection (in one
    /// write), answering the proxy's own commands in order.
    async fn forward(&mut self, up: &mut RedisConn) -> Result<(), String> {
        let mut out = BytesMut::new();
        while self.closing.is_none() && self.waiting < self.pool.cfg.max_pipeline {
            let cmd = match self.parser.parse(&self.rbuf) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(e) => {
                    self.push_errors(1, &format!("ERR Protocol error: {e}"));
                    self.closing = Some(End::Malformed(e.to_string()));
                    break;
                }
            };
            let frame = self.rbuf.split_to(cmd.len).freeze();
            if cmd.argc() == 0 {
                continue;
            }
            self.reg.received(1, 0);
            self.reg
                .statement_command(cmd.arg(&frame, 0), cmd.argc() - 1);
            match self.route(&cmd, &frame) {
                Route::Local(Local::Ping) | Route::Shared | Route::Dedicated(_) => {}
                Route::Local(Local::Select) if self.state.in_multi => {
                    self.push_errors(
                        1,
                        "ERR tidepool: SELECT inside MULTI is not supported through the proxy",
                    );
                    continue;
                }
                Route::Local(Local::Select) => {
                    // Validated here so that it cannot fail upstream, then sent on: the
                    // connection follows the client's db and its own +OK answers the client.
                    let databases = self.pool.facts().await.map_or(16, |f| f.databases);
                    match super::local::select_target(&cmd, &frame, databases) {
                        Ok(db) => {
                            self.state.db = db;
                            up.db = db;
                            self.push_waiting(1);
                            out.extend_from_slice(&frame);
                        }
                        Err(msg) => self.push_errors(1, msg),
                    }
                    continue;
                }
                Route::Local(Local::Hello)
                    if hello_switches_protocol(&cmd, &frame, self.state.resp3) =>
                {
                    self.push_errors(1, "ERR tidepool: HELLO cannot change the protocol while the client holds MULTI, WATCH, a subscription or a blocking command");
                    continue;
                }
                Route::Local(Local::Reset) => {
                    // The upstream resets its own state; afterwards it is de-authenticated and
                    // in RESP2, so it is closed instead of reused.
                    up.broken = true;
                    self.state.reset(self.pool.password_required());
                    out.extend_from_slice(&frame);
                    self.push_waiting(1);
                    continue;
                }
                Route::Local(local) => {
                    self.answer_local(local, &cmd, &frame).await;
                    continue;
                }
                route @ (Route::Refused(_) | Route::NoAuth) => {
                    self.push_refusal(&route);
                    continue;
                }
            }
            let replies = self.state.command_sent(&cmd, &frame);
            if cmd.inline {
                out.extend_from_slice(&reencode(&cmd, &frame));
            } else {
                out.extend_from_slice(&frame);
            }
            if replies > 0 {
                self.push_waiting(replies);
            }
        }
        if !out.is_empty() {
            up.write_all(&out).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Relays every complete frame the dedicated connection sent.
    fn relay(&mut self, up: &mut RedisConn) -> Result<(), String> {
        loop {
            let info = match up.scanner.scan(&up.buf) {
                Ok(Some(info)) => info,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("upstream sent malformed RESP: {e}")),
            };
            let frame = up.buf.split_to(info.len);
            match classify(&frame, info, &self.state) {
                Frame::Reply => {
                    self.wbuf.extend_from_slice(&frame);
                    self.answered(1);
                }
                Frame::Confirmation(count) => {
                    self.state.confirmation_received(count);
                    self.wbuf.extend_from_slice(&frame);
                }
                Frame::Message => self.wbuf.extend_from_slice(&frame),
            }
        }
    }

    fn upstream_failed(&mut self, up: &mut RedisConn, error: String) {
        up.broken = true;
        self.reg.error(ErrorKind::UpstreamLost);
        let owed = self.waiting;
        self.fail_waiting(
            owed,
            &format!("ERR tidepool: upstream connection lost: {error}"),
        );
        tracing::warn!(pool = %self.pool.cfg.name, client = self.peer.id, %error, "dedicated connection failed");
        if self.state.holds_upstream() {
            // A transaction, watch or subscription the client believes in is gone: carrying on
            // would run its next commands outside it.
            self.closing = Some(End::UpstreamLostState(error));
        }
    }

    fn client_gone(&mut self, end: End) {
        // Nothing is owed to a client that left.
        self.pending.clear();
        self.wbuf.clear();
        self.closing = Some(end);
    }
}

fn hello_switches_protocol(cmd: &resp::Command, frame: &[u8], resp3: bool) -> bool {
    cmd.argc() > 1 && cmd.arg(frame, 1) != (if resp3 { b"3" } else { b"2" })
}

/// Tells replies from pub/sub confirmations and messages. Only frames that can be either are
/// decoded: pushes, and (in RESP2) arrays while the client has or awaits subscriptions.
fn classify(frame: &[u8], info: FrameInfo, st: &super::super::state::ClientState) -> Frame {
    let pubsub_context = st.subscriptions > 0 || st.pending_confirmations != Some(0);
    let may_be_pubsub = info.is_push() || (info.kind == b'*' && pubsub_context && !st.resp3);
    if !may_be_pubsub {
        return Frame::Reply;
    }
    let items = match resp::decode_value(frame, Limits::default()) {
        Ok(Value::Push(items) | Value::Array(items)) => items,
        _ => {
            return if info.is_push() {
                Frame::Message
            } else {
                Frame::Reply
            };
        }
    };
    let kind = items
        .first()
        .and_then(Value::as_bytes)
        .map(<[u8]>::to_ascii_lowercase);
    match kind.as_deref() {
        Some(
            b"subscribe" | b"unsubscribe" | b"psubscribe" | b"punsubscribe" | b"ssubscribe"
            | b"sunsubscribe",
        ) => match items.get(2).and_then(Value::as_int) {
            Some(n) => Frame::Confirmation(n.max(0) as usize),
            None => Frame::Message,
        },
        _ if info.is_push() => Frame::Message,
        Some(b"message" | b"pmessage" | b"smessage") => Frame::Message,
        _ => Frame::Reply,
    }
}
