//! Prepared statements on one upstream connection, by SQL text, so that a client's statement
//! can run on whichever connection serves it: prepared lazily the first time it runs there,
//! reused by every client with the same text, and closed when the cache is full (least
//! recently used first) or the connection is reset.

use std::collections::HashMap;

use bytes::Bytes;

/// An upstream statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStmt {
    pub id: u32,
    pub params: u16,
    /// The parameter types last bound on it (`COM_STMT_EXECUTE` with new-params-bound = 1);
    /// the server keeps them for later executes that do not resend them.
    pub bound_types: Option<Bytes>,
    last_used: u64,
}

#[derive(Debug, Default)]
pub struct StmtCache {
    by_sql: HashMap<Bytes, UpstreamStmt>,
    clock: u64,
}

impl StmtCache {
    pub fn get(&mut self, sql: &[u8]) -> Option<&mut UpstreamStmt> {
        self.clock += 1;
        let now = self.clock;
        let stmt = self.by_sql.get_mut(sql)?;
        stmt.last_used = now;
        Some(stmt)
    }

    /// Records a statement prepared on this connection. Returns the ids to close: a statement
    /// it replaces, and the least recently used one beyond `max`.
    pub fn insert(&mut self, sql: Bytes, id: u32, params: u16, max: usize) -> Vec<u32> {
        self.clock += 1;
        let stmt = UpstreamStmt {
            id,
            params,
            bound_types: None,
            last_used: self.clock,
        };
        let mut close: Vec<u32> = self
            .by_sql
            .insert(sql, stmt)
            .map(|old| old.id)
            .into_iter()
            .collect();
        while self.by_sql.len() > max.max(1) {
            let oldest = self
                .by_sql
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            if let Some(s) = oldest.and_then(|k| self.by_sql.remove(&k)) {
                close.push(s.id);
            }
        }
        close
    }

    /// The connection was reset: the server dropped every statement.
    pub fn clear(&mut self) {
        self.by_sql.clear();
    }

    pub fn len(&self) -> usize {
        self.by_sql.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sql.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_found_by_their_text() {
        let mut c = StmtCache::default();
        assert!(
            c.insert(Bytes::from_static(b"SELECT ?"), 7, 1, 8)
                .is_empty()
        );
        assert_eq!(c.get(b"SELECT ?").map(|s| s.id), Some(7));
        assert!(c.get(b"SELECT 1").is_none());
    }

    #[test]
    fn the_least_recently_used_is_closed_beyond_the_limit() {
        let mut c = StmtCache::default();
        c.insert(Bytes::from_static(b"a"), 1, 0, 2);
        c.insert(Bytes::from_static(b"b"), 2, 0, 2);
        c.get(b"a");
        assert_eq!(
            c.insert(Bytes::from_static(b"c"), 3, 0, 2),
            vec![2],
            "b was used least recently"
        );
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn preparing_the_same_text_again_closes_the_old_statement() {
        let mut c = StmtCache::default();
        c.insert(Bytes::from_static(b"a"), 1, 0, 8);
        assert_eq!(c.insert(Bytes::from_static(b"a"), 5, 0, 8), vec![1]);
        assert_eq!(c.get(b"a").map(|s| s.id), Some(5));
    }
}
