//! `KILL [CONNECTION | QUERY] <id>`: the id a client knows is the proxy's connection id (from
//! its handshake), not an upstream thread. The proxy finds the upstream thread serving that
//! client now, cancels its statement there, and (for `KILL CONNECTION`) closes that client
//! with the reason. Like the server, only the owner (same user) may kill.

use super::super::protocol::response::ErrPacket;
use super::super::protocol::sqlscan::{Lexer, Token};
use super::{Flow, Session, Writer};
use crate::registry::{CloseReason, ErrorKind};

/// `(query_only, id)` of a `KILL` statement; `None` for forms the proxy cannot map (`KILL
/// QUERY ID <query id>`, `KILL USER <name>`).
pub fn parse_kill(sql: &[u8]) -> Option<(bool, u64)> {
    let toks: Vec<Token<'_>> = Lexer::new(sql).map(|t| t.token).take(8).collect();
    let is = |t: &Token<'_>, w: &str| matches!(t, Token::Word(x) if x.eq_ignore_ascii_case(w.as_bytes()));
    let mut rest = toks.get(1..)?;
    if rest.first().is_some_and(|t| is(t, "HARD") || is(t, "SOFT")) {
        rest = &rest[1..];
    }
    let mut query_only = false;
    if let Some(t) = rest.first() {
        if is(t, "QUERY") {
            query_only = true;
            rest = &rest[1..];
        } else if is(t, "CONNECTION") {
            rest = &rest[1..];
        }
    }
    let id = match rest.first()? {
        Token::Number(n) => std::str::from_utf8(n).ok()?.parse().ok()?,
        _ => return None,
    };
    rest[1..]
        .iter()
        .all(|t| *t == Token::Punct(b';'))
        .then_some((query_only, id))
}

impl Session {
    pub(super) async fn kill(&mut self, sql: &[u8], writer: &mut Writer) -> Flow {
        let Some((query_only, id)) = parse_kill(sql) else {
            let err = ErrPacket::new(
                1105,
                b"HY000",
                "tidepool: only KILL [CONNECTION | QUERY] <connection id> is supported through the proxy",
            );
            return self.err(writer, err).await;
        };
        let Some(target) = self.pool.served_by(id) else {
            return self
                .err(
                    writer,
                    ErrPacket::new(1094, b"HY000", format!("Unknown thread id: {id}")),
                )
                .await;
        };
        if target.user != self.user {
            return self
                .err(
                    writer,
                    ErrPacket::new(1095, b"HY000", format!("You are not owner of thread {id}")),
                )
                .await;
        }
        if id == self.peer.id {
            if query_only {
                return self.ok(writer).await;
            }
            let err = ErrPacket::new(1927, b"70100", "Connection was killed");
            let _ = self.err(writer, err).await;
            return Flow::Close("killed itself (KILL)".into());
        }
        if let Some(thread) = target.thread
            && let Err(err) = self.kill_upstream_query(thread).await
        {
            return self.err(writer, err).await;
        }
        if !query_only && let Some(session) = self.pool.registry.session(id) {
            session.close(CloseReason {
                message: format!("killed by connection {} (KILL {id})", self.peer.id),
                kind: ErrorKind::Killed,
            });
        }
        tracing::info!(pool = %self.pool.cfg.name, client = self.peer.id, target = id, query_only, "KILL");
        self.ok(writer).await
    }

    /// `KILL QUERY <thread>` on an upstream connection: the client's own if it holds one,
    /// otherwise one from the pool.
    async fn kill_upstream_query(&mut self, thread: u32) -> Result<(), ErrPacket> {
        let sql = format!("KILL QUERY {thread}");
        let as_err = |e: super::super::upstream::UpstreamError| {
            e.upstream_err()
                .cloned()
                .unwrap_or_else(|| ErrPacket::new(1105, b"HY000", format!("tidepool: {e}")))
        };
        if let Some(held) = self.held.as_mut() {
            return held
                .conn()
                .query(&sql, "KILL")
                .await
                .map(|_| ())
                .map_err(as_err);
        }
        let mut checkout = self.checkout().await?;
        let result = checkout
            .conn()
            .query(&sql, "KILL")
            .await
            .map(|_| ())
            .map_err(as_err);
        self.pool.put(checkout);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_forms_that_name_a_connection_are_understood() {
        assert_eq!(parse_kill(b"KILL 17"), Some((false, 17)));
        assert_eq!(parse_kill(b"kill connection 17;"), Some((false, 17)));
        assert_eq!(parse_kill(b"KILL QUERY 9"), Some((true, 9)));
        assert_eq!(parse_kill(b"KILL HARD QUERY 9"), Some((true, 9)));
        assert_eq!(
            parse_kill(b"KILL QUERY ID 9"),
            None,
            "query ids are the upstream's"
        );
        assert_eq!(parse_kill(b"KILL USER app"), None);
    }
}
