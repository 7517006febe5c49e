//! Running one client command on an upstream: take the held connection or check one out,
//! replay the difference in session state, send the command (streaming a command of 16 MiB or
//! more), relay the response, then decide from it whether the client keeps the connection.

use super::super::io::Packet;
use super::super::pool::Checkout;
use super::super::protocol::capabilities::SERVER_STATUS_IN_TRANS;
use super::super::protocol::command::{
    COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA,
};
use super::super::protocol::response::ErrPacket;
use super::super::protocol::tracker::{ResponseEnd, ResponseTracker};
use super::super::relay::{self, RelayError};
use super::super::state::PinReason;
use super::super::state::{self, StatementScan};
use super::prepared::Op;
use super::{Flow, Reader, Session, Writer, acquire_err, send_err};
use crate::config::PoolMode;
use crate::pool::AcquireError;
use crate::registry::{ErrorKind, SessionState};
use std::time::Instant;

impl Session {
    pub(super) async fn forward(
        &mut self,
        packet: Packet,
        op: Op,
        reader: &mut Reader,
        writer: &mut Writer,
    ) -> Flow {
        let command = packet.payload[0];
        let (scan, prepare) = match op {
            Op::Query(scan) => (Some(scan), None),
            Op::Prepare(sql) => (None, Some(sql)),
            Op::Plain | Op::Statement => (None, None),
        };
        let statement = is_statement_command(command);
        let mut checkout = match self.held.take() {
            Some(c) => c,
            None => match self.checkout().await {
                Ok(c) => c,
                Err(err) => {
                    let closed = self.reg.close_reason().map(|r| r.message);
                    let flow = self.err(writer, err).await;
                    // Closed while waiting: the error above was the client's last word.
                    return match closed {
                        Some(why) => Flow::Close(why),
                        None => flow,
                    };
                }
            },
        };
        // While the command runs, `KILL QUERY <this client>` must find this thread.
        let thread = checkout.get().thread_id;
        self.pool.serving(self.peer.id, &self.user, Some(thread));
        let reads_id = scan.as_ref().is_some_and(|s| s.reads_last_insert_id);
        let replay = state::replay(
            &self.state.replay,
            &checkout.get().state,
            reads_id.then_some(self.state.last_insert_id),
        );
        if !replay.is_empty() {
            match Box::pin(checkout.conn().apply(replay)).await {
                Ok(changes) => {
                    // The server's own spelling of what was replayed, so the next diff is empty.
                    let _ = state::apply_changes(
                        &changes,
                        &mut self.state.replay,
                        &mut Default::default(),
                    );
                }
                Err(e) => {
                    let err = e.upstream_err().cloned().unwrap_or_else(|| {
                        ErrPacket::new(1105, b"HY000", format!("tidepool: {e}"))
                    });
                    tracing::warn!(pool = %self.pool.cfg.name, client = self.peer.id, error = %e, "replaying session state failed");
                    self.give_back(checkout);
                    return self.err(writer, err).await;
                }
            }
        }
        let packet = if statement {
            match self.bind(&mut checkout, packet).await {
                Ok(p) => p,
                Err(err) => {
                    self.give_back(checkout);
                    return self.err(writer, err).await;
                }
            }
        } else {
            packet
        };
        let last_seq = match self.send_command(&mut checkout, &packet, reader).await {
            Ok(seq) => seq,
            Err(why) => {
                drop(checkout);
                return Box::pin(self.upstream_lost(writer, why, false)).await;
            }
        };
        if !ResponseTracker::new(command, checkout.get().caps).expects_response() {
            // COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA: nothing comes back, to anyone.
            self.held = Some(checkout);
            return Flow::Continue;
        }
        // The answer follows the last packet of the command (a command of 16 MiB or more
        // came in several).
        writer.seq = last_seq.wrapping_add(1);
        let mut client = relay::Client {
            reader,
            writer,
            caps: self.caps,
            status: self.state.status,
            stmt_id: prepare.as_ref().map(|_| {
                self.next_stmt_id = self.next_stmt_id.wrapping_add(1).max(1);
                self.next_stmt_id
            }),
        };
        let client_id = client.stmt_id;
        let result = relay::relay(checkout.conn(), &mut client, command).await;
        self.state.status = client.status;
        match result {
            Ok(relayed) => {
                self.count(command, &relayed);
                if let (Some(sql), Some(id), Some(ok)) = (prepare, client_id, relayed.end.prepared)
                {
                    self.prepared(&mut checkout, sql, id, ok.stmt_id, ok.params)
                        .await;
                }
                if command == COM_STMT_EXECUTE {
                    // Long data belongs to the execute that used it.
                    self.state.pins.remove(&PinReason::LongData);
                }
                self.after_response(checkout, scan.unwrap_or_default(), relayed.end)
                    .await
            }
            Err(RelayError::Client(e)) => {
                drop(checkout);
                Flow::Close(format!("client socket: {e}"))
            }
            Err(RelayError::Upstream { cause, relayed }) => {
                drop(checkout);
                Box::pin(self.upstream_lost(writer, cause, relayed)).await
            }
        }
    }

    /// An upstream for new work: held back while the pool is paused, then FIFO within
    /// `acquire_timeout`.
    pub(super) async fn checkout(&mut self) -> Result<Checkout, ErrPacket> {
        if let Err(why) = self.pool.entry.admit(&self.reg).await {
            return Err(ErrPacket::new(1105, b"HY000", format!("tidepool: {why}")));
        }
        self.reg.set_state(SessionState::Waiting);
        let started = Instant::now();
        // `kill` and the idle timeouts must not wait for the pool.
        let mut result = tokio::select! {
            r = self.pool.acquire(&self.key, &self.login, &self.state.replay) => r,
            _ = self.reg.closed() => {
                let why = self.reg.close_reason().map_or_else(|| "closed by the proxy".to_string(), |r| r.message);
                return Err(ErrPacket::new(1927, b"70100", format!("tidepool: {why}")));
            }
        };
        // Pooled connections the upstream closed meanwhile are dropped, not handed out.
        for _ in 0..self.pool.max_upstream() {
            match result {
                // Only connections idle for a while are probed (a syscall): under load they
                // come back within microseconds, and a restart leaves them idle.
                Ok(mut c) if c.get().last_used.elapsed() >= PROBE_IDLE && c.get().peer_closed() => {
                    tracing::debug!(pool = %self.pool.cfg.name, thread = c.get().thread_id, "dropping a pooled connection the upstream closed");
                    c.conn().broken = true;
                    self.pool.put(c);
                    result = self
                        .pool
                        .acquire(&self.key, &self.login, &self.state.replay)
                        .await;
                }
                _ => break,
            }
        }
        self.pool.entry.stats.acquire_wait.record(started.elapsed());
        self.reg.set_state(SessionState::Active);
        result.map_err(|e| {
            tracing::warn!(pool = %self.pool.cfg.name, client = self.peer.id, error = %e, "no upstream connection for client");
            self.reg.error(match e {
                AcquireError::Exhausted { .. } => ErrorKind::AcquireTimeout,
                AcquireError::Unavailable { .. } => ErrorKind::UpstreamUnavailable,
            });
            acquire_err(&e)
        })
    }

    /// Sends the command packet, and any continuation packets of a command of 16 MiB or more
    /// straight from the client, never holding it whole.
    async fn send_command(
        &mut self,
        checkout: &mut Checkout,
        first: &Packet,
        reader: &mut Reader,
    ) -> Result<u8, String> {
        let conn = checkout.conn();
        conn.writer.seq = 0;
        conn.writer
            .relay(&first.payload)
            .await
            .map_err(|e| conn.io(e).to_string())?;
        let mut last_seq = first.seq;
        let mut continued = first.is_continued();
        let mut total = first.payload.len();
        while continued {
            let next = reader.read().await.map_err(|e| format!("client: {e}"))?;
            total += next.payload.len();
            if total > self.pool.live().max_command_bytes {
                conn.broken = true;
                return Err(format!(
                    "command exceeds max_command_bytes ({})",
                    self.pool.live().max_command_bytes
                ));
            }
            continued = next.is_continued();
            last_seq = next.seq;
            conn.writer
                .relay(&next.payload)
                .await
                .map_err(|e| conn.io(e).to_string())?;
        }
        conn.writer
            .flush()
            .await
            .map_err(|e| conn.io(e).to_string())?;
        Ok(last_seq)
    }

    /// The upstream connection failed under a command. The client gets an error if nothing of
    /// the response reached it yet; if it had a transaction or pinned state there, that is gone,
    /// so it is closed rather than allowed to carry on as if it were not.
    async fn upstream_lost(&mut self, writer: &mut Writer, cause: String, relayed: bool) -> Flow {
        tracing::warn!(pool = %self.pool.cfg.name, client = self.peer.id, error = %cause, "upstream connection lost under a command");
        self.reg.error(ErrorKind::UpstreamLost);
        let lost_state = self.state.in_trans || !self.state.pins.is_empty();
        if !relayed {
            let err = ErrPacket::new(
                2013,
                b"HY000",
                format!("tidepool: lost connection to the upstream during the command: {cause}"),
            );
            let seq = writer.seq;
            let _ = send_err(writer, &err, seq).await;
        }
        if relayed || lost_state {
            return Flow::Close(format!("upstream lost: {cause}"));
        }
        Flow::Continue
    }

    /// Updates the client's state from a complete response and keeps or gives back the
    /// connection.
    async fn after_response(
        &mut self,
        mut checkout: Checkout,
        scan: StatementScan,
        end: ResponseEnd,
    ) -> Flow {
        if let Some(id) = end.insert_id {
            self.state.last_insert_id = id;
        }
        let conn = checkout.conn();
        if let Some(pin) = state::apply_changes(
            &end.session_state_changes,
            &mut self.state.replay,
            &mut conn.state,
        ) {
            self.state.pins.insert(pin);
        }
        self.state.pins.extend(scan.pins.iter().copied());
        for released in &scan.releases {
            self.state.pins.remove(released);
        }
        self.state.in_trans = match state::in_transaction(&end) {
            Some(open) => open,
            // An error carries no status. If a transaction may have begun (autocommit off), ask.
            None if !self.state.in_trans && !self.state.autocommit() => {
                match Box::pin(conn.status()).await {
                    Ok(status) => status & SERVER_STATUS_IN_TRANS != 0,
                    Err(_) => true,
                }
            }
            None => self.state.in_trans,
        };
        let keep = self.state.in_trans
            || !self.state.pins.is_empty()
            || self.pool.cfg.mode == PoolMode::Session;
        if keep && !checkout.get().broken {
            self.held = Some(checkout);
        } else {
            self.give_back(checkout);
        }
        Flow::Continue
    }

    /// The client's own `ROW_COUNT()` / `FOUND_ROWS()` after a statement.
    fn count(&mut self, command: u8, relayed: &relay::Relayed) {
        use super::super::protocol::command::{COM_QUERY, COM_STMT_EXECUTE};
        if command != COM_QUERY && command != COM_STMT_EXECUTE {
            return;
        }
        match (&relayed.end.error, relayed.rows, relayed.end.ok) {
            (Some(_), _, _) => self.state.row_count = -1,
            (None, Some(rows), _) => {
                self.state.found_rows = rows;
                self.state.row_count = -1;
            }
            (None, None, Some(ok)) => self.state.row_count = ok.affected_rows as i64,
            (None, None, None) => {}
        }
    }

    fn give_back(&mut self, checkout: Checkout) {
        self.pool.put(checkout);
    }
}

/// Pooled connections idle at least this long are checked for a close by the upstream before
/// they are handed out.
const PROBE_IDLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Commands that name a prepared statement by the client's id.
fn is_statement_command(command: u8) -> bool {
    matches!(
        command,
        COM_STMT_EXECUTE
            | COM_STMT_FETCH
            | COM_STMT_RESET
            | COM_STMT_CLOSE
            | COM_STMT_SEND_LONG_DATA
    )
}
