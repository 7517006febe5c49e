//! Prepared statements without pinning. A client gets statement ids of the proxy's own; each
//! names the SQL text (and the parameter types the client last bound). When the client
//! executes one, it runs on whichever upstream connection serves the client: prepared there
//! lazily if that connection has not seen the text (`stmt_cache`), its id swapped, and its
//! parameter types bound again if the client relies on types that connection never received.
//! Only long data (`COM_STMT_SEND_LONG_DATA`, until the execute it belongs to) and cursors keep
//! the client on one connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::super::io::Packet;
use super::super::pool::Checkout;
use super::super::protocol::command::{COM_STMT_EXECUTE, ClientCommand};
use super::super::protocol::response::ErrPacket;
use super::super::state::{PinReason, StatementScan};
use super::super::upstream::MysqlConn;
use super::{Flow, Reader, Session, Writer};

/// What `forward` runs.
pub(super) enum Op {
    /// A command with nothing to track (COM_INIT_DB, COM_FIELD_LIST, ...).
    Plain,
    Query(StatementScan),
    /// COM_STMT_PREPARE of this text.
    Prepare(Bytes),
    /// A COM_STMT_* that names a statement: bound to the upstream connection first.
    Statement,
}

/// A statement as the client knows it.
#[derive(Debug, Clone)]
pub(super) struct ClientStmt {
    pub sql: Bytes,
    pub params: u16,
    /// The parameter types of the client's last execute that sent them.
    pub types: Option<Bytes>,
}

/// The execute packet's layout: `[0x17][stmt id: 4][flags: 1][iterations: 4]`, then, with
/// parameters, a null bitmap, the new-params-bound flag, and (if set) two bytes of type per
/// parameter.
const EXECUTE_HEADER: usize = 10;

impl Session {
    /// COM_STMT_EXECUTE, _FETCH, _RESET, _CLOSE, _SEND_LONG_DATA.
    pub(super) async fn statement(
        &mut self,
        packet: Packet,
        reader: &mut Reader,
        writer: &mut Writer,
    ) -> Flow {
        let command = ClientCommand::decode(&packet.payload, self.caps);
        match command {
            Ok(ClientCommand::StmtClose(id)) => {
                // No answer is sent. The upstream statement stays cached for whoever runs that
                // text next.
                self.stmts.remove(&id);
                Flow::Continue
            }
            Ok(ClientCommand::StmtReset(id)) if self.held.is_none() => {
                // Long data and cursors pin; without either there is nothing to reset upstream.
                if !self.stmts.contains_key(&id) {
                    return self.err(writer, unknown(id)).await;
                }
                self.ok(writer).await
            }
            Ok(ClientCommand::StmtSendLongData { .. }) => {
                self.state.pins.insert(PinReason::LongData);
                self.forward(packet, Op::Statement, reader, writer).await
            }
            Ok(ClientCommand::StmtExecute { flags, .. }) => {
                if flags != 0 {
                    self.state.pins.insert(PinReason::Cursor);
                }
                self.forward(packet, Op::Statement, reader, writer).await
            }
            _ => self.forward(packet, Op::Statement, reader, writer).await,
        }
    }

    /// The client's statement command rewritten for `checkout`'s connection.
    pub(super) async fn bind(
        &mut self,
        checkout: &mut Checkout,
        packet: Packet,
    ) -> Result<Packet, ErrPacket> {
        let p = &packet.payload;
        let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
        let Some(stmt) = self.stmts.get(&id).cloned() else {
            return Err(unknown(id));
        };
        let max = self.max_prepared();
        let conn = checkout.conn();
        let upstream = match conn.stmts.get(&stmt.sql).map(|s| s.id) {
            Some(upstream) => upstream,
            None => {
                let (upstream, params) = Box::pin(conn.prepare(&stmt.sql)).await.map_err(|e| {
                    e.upstream_err()
                        .cloned()
                        .unwrap_or_else(|| ErrPacket::new(1105, b"HY000", format!("tidepool: {e}")))
                })?;
                cache(conn, stmt.sql.clone(), upstream, params, max).await;
                upstream
            }
        };
        let mut out = BytesMut::from(&p[..]);
        out[1..5].copy_from_slice(&upstream.to_le_bytes());
        if p[0] == COM_STMT_EXECUTE && stmt.params > 0 {
            out = self.rebind_types(checkout, id, &stmt, out);
        }
        Ok(Packet {
            seq: packet.seq,
            payload: out.freeze(),
        })
    }

    /// Keeps parameter types consistent: remembers the types a client sends, and sends them
    /// again on a connection whose statement never received them.
    fn rebind_types(
        &mut self,
        checkout: &mut Checkout,
        id: u32,
        stmt: &ClientStmt,
        mut out: BytesMut,
    ) -> BytesMut {
        let params = usize::from(stmt.params);
        let flag_at = EXECUTE_HEADER + params.div_ceil(8);
        let Some(&flag) = out.get(flag_at) else {
            return out;
        };
        let upstream = checkout.conn().stmts.get(&stmt.sql);
        let Some(upstream) = upstream else { return out };
        if flag == 1 {
            if let Some(types) = out.get(flag_at + 1..flag_at + 1 + 2 * params) {
                let types = Bytes::copy_from_slice(types);
                upstream.bound_types = Some(types.clone());
                if let Some(s) = self.stmts.get_mut(&id) {
                    s.types = Some(types);
                }
            }
            return out;
        }
        match &stmt.types {
            Some(types) if upstream.bound_types.as_ref() != Some(types) => {
                let mut rebound = BytesMut::with_capacity(out.len() + types.len());
                rebound.extend_from_slice(&out[..flag_at]);
                rebound.put_u8(1);
                rebound.extend_from_slice(types);
                rebound.extend_from_slice(&out[flag_at + 1..]);
                upstream.bound_types = Some(types.clone());
                out = rebound;
                out
            }
            _ => out,
        }
    }

    /// Records a statement the client prepared (`client_id`), and the upstream's
    /// (`upstream_id`) in that connection's cache.
    pub(super) async fn prepared(
        &mut self,
        checkout: &mut Checkout,
        sql: Bytes,
        client_id: u32,
        upstream_id: u32,
        params: u16,
    ) {
        let max = self.max_prepared();
        cache(checkout.conn(), sql.clone(), upstream_id, params, max).await;
        self.stmts.insert(
            client_id,
            ClientStmt {
                sql,
                params,
                types: None,
            },
        );
    }
}

impl Session {
    fn max_prepared(&self) -> usize {
        self.pool
            .live()
            .mysql
            .as_ref()
            .map_or(64, |m| m.max_prepared_statements)
    }
}

/// Records an upstream statement in its connection's cache, closing what the cache lets go.
async fn cache(conn: &mut MysqlConn, sql: Bytes, id: u32, params: u16, max: usize) {
    for evicted in conn.stmts.insert(sql, id, params, max) {
        // No answer comes; a failure marks the connection broken and it is closed on return.
        let _ = conn.close_statement(evicted).await;
    }
}

fn unknown(id: u32) -> ErrPacket {
    ErrPacket::new(
        1243,
        b"HY000",
        format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
    )
}
