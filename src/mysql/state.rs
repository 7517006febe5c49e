//! What a MySQL client's session holds, and what may move it between upstream connections.
//!
//! Replayable state (system variables, schema, multi-statements) travels with the client and
//! is replayed lazily, as a difference, on whichever upstream serves it next. State nothing can
//! replay (user variables, temporary tables, locks, SQL `PREPARE`, prepared statements, …)
//! pins the client to its upstream, with the reason recorded. Decisions come from two places:
//! the statement's text (a lexical scan, before it runs — MariaDB does not report `GET_LOCK`)
//! and the upstream's session-state tracking (after it ran).

use std::collections::BTreeMap;

use super::protocol::response::SessionStateChange;
use super::protocol::sqlscan::{self, Token};
use super::protocol::tracker::ResponseEnd;

/// Session state that can be re-created on any upstream connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayable {
    /// System variables changed from the connection's defaults, by lower-case name.
    pub vars: BTreeMap<String, String>,
    pub schema: Option<String>,
    pub multi_statements: bool,
}

/// Why a client keeps its upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PinReason {
    UserVariable,
    TemporaryTable,
    SqlPrepare,
    /// `COM_STMT_SEND_LONG_DATA` sent: its data lives on the upstream statement until the
    /// execute that uses it.
    LongData,
    /// A prepared statement executed with a cursor: rows are fetched from that connection.
    Cursor,
    GetLock,
    LockTables,
    FoundRows,
    Handler,
    TransactionCharacteristics,
    SessionTracking,
    /// The upstream said state changed and nothing the proxy tracks explains it.
    UnexplainedStateChange,
}

impl PinReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::UserVariable => "user variable",
            PinReason::TemporaryTable => "temporary table",
            PinReason::SqlPrepare => "SQL PREPARE",
            PinReason::LongData => "prepared statement long data",
            PinReason::Cursor => "prepared statement cursor",
            PinReason::GetLock => "GET_LOCK",
            PinReason::LockTables => "LOCK TABLES",
            PinReason::FoundRows => "SQL_CALC_FOUND_ROWS",
            PinReason::Handler => "HANDLER",
            PinReason::TransactionCharacteristics => "SET TRANSACTION (next transaction only)",
            PinReason::SessionTracking => "session tracking changed by the client",
            PinReason::UnexplainedStateChange => "untracked session state change",
        }
    }
}

/// What a statement's text says it will do, before it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementScan {
    pub pins: Vec<PinReason>,
    pub releases: Vec<PinReason>,
    /// It calls `LAST_INSERT_ID()`: the client's own value must be in place first.
    pub reads_last_insert_id: bool,
    /// `COMMIT` or `ROLLBACK` (without `AND CHAIN`/`TO SAVEPOINT`): answerable locally when the
    /// client has no transaction open.
    pub ends_transaction: bool,
    /// The statement's first keyword, for the few the session answers or checks itself.
    pub verb: Verb,
    /// It mentions `LOCAL` (with `LOAD`: `LOAD DATA LOCAL INFILE`).
    pub mentions_local: bool,
    /// It calls `ROW_COUNT()` or `FOUND_ROWS()` (a read the proxy may answer itself).
    pub reads_counter: bool,
}

/// A statement's first keyword (`(SELECT …)` → `SELECT`), as far as the session cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verb {
    Set,
    Create,
    Prepare,
    Lock,
    Unlock,
    Handler,
    Commit,
    Rollback,
    Kill,
    Load,
    /// Any other keyword, or none.
    #[default]
    Other,
}

impl Verb {
    fn of(word: &[u8]) -> Verb {
        const VERBS: [(&[u8], Verb); 10] = [
            (b"SET", Verb::Set),
            (b"CREATE", Verb::Create),
            (b"PREPARE", Verb::Prepare),
            (b"LOCK", Verb::Lock),
            (b"UNLOCK", Verb::Unlock),
            (b"HANDLER", Verb::Handler),
            (b"COMMIT", Verb::Commit),
            (b"ROLLBACK", Verb::Rollback),
            (b"KILL", Verb::Kill),
            (b"LOAD", Verb::Load),
        ];
        VERBS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map_or(Verb::Other, |(_, v)| *v)
    }
}

/// Scans a `COM_QUERY` statement: one pass of the lexer, no allocation for a statement that
/// pins nothing.
pub fn scan_statement(sql: &[u8]) -> StatementScan {
    if let Some(scan) = plain_statement(sql) {
        return scan;
    }
    let word = |t: Token<'_>, w: &[u8]| matches!(t, Token::Word(x) if x.eq_ignore_ascii_case(w));
    let user_var = |t: Token<'_>| matches!(t, Token::Variable(v) if !v.starts_with(b"@@"));
    let mut s = StatementScan::default();
    let mut first_seen = false;
    let (mut second_is_transaction, mut assigns_user_var) = (false, false);
    let (mut temporary, mut chain_to_release, mut calc_found_rows) = (false, false, false);
    let (mut get_lock, mut release_all_locks, mut found_rows) = (false, false, false);
    let mut previous: Option<Token<'_>> = None;
    for (i, t) in sqlscan::Lexer::new(sql).map(|t| t.token).enumerate() {
        if !first_seen && t != Token::Punct(b'(') {
            first_seen = true;
            if let Token::Word(w) = t {
                s.verb = Verb::of(w);
            }
        }
        if i == 1 && word(t, b"TRANSACTION") {
            second_is_transaction = true;
        }
        if let Token::Word(w) = t {
            if w.eq_ignore_ascii_case(b"TEMPORARY") {
                temporary = true;
            } else if w.eq_ignore_ascii_case(b"CHAIN")
                || w.eq_ignore_ascii_case(b"TO")
                || w.eq_ignore_ascii_case(b"RELEASE")
            {
                chain_to_release = true;
            } else if w.eq_ignore_ascii_case(b"SQL_CALC_FOUND_ROWS") {
                calc_found_rows = true;
            } else if w.eq_ignore_ascii_case(b"LOCAL") {
                s.mentions_local = true;
            }
        }
        if let Some(p) = previous {
            if user_var(p) && matches!(t, Token::Punct(b'=') | Token::Punct(b':'))
                || word(p, b"INTO") && user_var(t)
            {
                assigns_user_var = true;
            }
            if t == Token::Punct(b'(')
                && let Token::Word(f) = p
            {
                let called = |name: &[u8]| f.eq_ignore_ascii_case(name);
                get_lock |= called(b"GET_LOCK");
                release_all_locks |= called(b"RELEASE_ALL_LOCKS");
                found_rows |= called(b"FOUND_ROWS");
                s.reads_last_insert_id |= called(b"LAST_INSERT_ID");
                s.reads_counter |= called(b"ROW_COUNT") || called(b"FOUND_ROWS");
            }
        }
        previous = Some(t);
    }
    match s.verb {
        Verb::Set if assigns_user_var => s.pins.push(PinReason::UserVariable),
        Verb::Set if second_is_transaction => s.pins.push(PinReason::TransactionCharacteristics),
        Verb::Create if temporary => s.pins.push(PinReason::TemporaryTable),
        Verb::Prepare => s.pins.push(PinReason::SqlPrepare),
        Verb::Lock => s.pins.push(PinReason::LockTables),
        Verb::Unlock => s.releases.push(PinReason::LockTables),
        Verb::Handler => s.pins.push(PinReason::Handler),
        Verb::Commit | Verb::Rollback => s.ends_transaction = !chain_to_release,
        _ if assigns_user_var => s.pins.push(PinReason::UserVariable),
        _ => {}
    }
    if get_lock {
        s.pins.push(PinReason::GetLock);
    }
    if release_all_locks {
        s.releases.push(PinReason::GetLock);
    }
    if calc_found_rows {
        s.pins.push(PinReason::FoundRows);
    } else if found_rows {
        s.releases.push(PinReason::FoundRows);
    }
    s
}

/// The scan of the common statement without a lexer: one that starts with a keyword the session
/// does not care about and holds no `@` (user variables), no `(` (function calls) and no
/// `SQL_CALC_FOUND_ROWS` anywhere — not even inside strings or comments, so nothing a lexer
/// would find is missed. `None`: scan it properly.
fn plain_statement(sql: &[u8]) -> Option<StatementScan> {
    let start = sql.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &sql[start..];
    let len = rest
        .iter()
        .position(|&b| !b.is_ascii_alphanumeric() && b != b'_');
    let first = &rest[..len.unwrap_or(rest.len())];
    if first.is_empty() || first[0].is_ascii_digit() || Verb::of(first) != Verb::Other {
        return None;
    }
    // A word running into a byte ≥ 0x80, `$` or a quote is the lexer's business.
    if len.is_some_and(|n| !(rest[n].is_ascii_whitespace() || rest[n] == b';')) {
        return None;
    }
    let suspicious = sql.iter().any(|&b| b == b'@' || b == b'(');
    let calc = sql
        .windows(b"CALC_FOUND".len())
        .any(|w| w.eq_ignore_ascii_case(b"CALC_FOUND"));
    (!suspicious && !calc).then(StatementScan::default)
}

/// System variables the proxy manages itself: never replayed, and a client changing them pins.
fn proxy_managed(name: &str) -> bool {
    name.starts_with("session_track_")
}

/// Variables replay must not carry (their values are per statement or per connection).
fn not_replayable(name: &str) -> bool {
    matches!(
        name,
        "last_insert_id" | "insert_id" | "identity" | "pseudo_thread_id"
    )
}

/// The state the upstream reported after a response, applied to both the client's replayable
/// state and the upstream connection's. Returns a pin reason if something changed that nothing
/// explains.
pub fn apply_changes(
    changes: &[SessionStateChange],
    client: &mut Replayable,
    upstream: &mut Replayable,
) -> Option<PinReason> {
    let mut explained = false;
    let mut unexplained = false;
    let mut pin = None;
    for change in changes {
        match change {
            SessionStateChange::SystemVariable { name, value } => {
                explained = true;
                let name = name.to_ascii_lowercase();
                if proxy_managed(&name) {
                    pin = Some(PinReason::SessionTracking);
                } else if !not_replayable(&name) {
                    client.vars.insert(name.clone(), value.clone());
                    upstream.vars.insert(name, value.clone());
                }
            }
            SessionStateChange::Schema(s) => {
                explained = true;
                client.schema = Some(s.clone());
                upstream.schema = Some(s.clone());
            }
            SessionStateChange::TransactionState(_) | SessionStateChange::Gtids(_) => {
                explained = true
            }
            SessionStateChange::TransactionCharacteristics(c) => {
                explained = true;
                if !c.is_empty() {
                    pin = Some(PinReason::TransactionCharacteristics);
                }
            }
            SessionStateChange::StateChanged(true) => unexplained = true,
            SessionStateChange::StateChanged(false) | SessionStateChange::Other { .. } => {}
        }
    }
    pin.or((unexplained && !explained).then_some(PinReason::UnexplainedStateChange))
}

/// What to send an upstream so that its session matches a client's: one combined
/// `SET SESSION …` (variables the upstream lacks or differs in, and `= DEFAULT` for variables
/// a previous client left that this one never set), and the schema to select.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub set: Option<String>,
    pub schema: Option<String>,
    pub multi_statements: Option<bool>,
}

impl Replay {
    pub fn is_empty(&self) -> bool {
        self.set.is_none() && self.schema.is_none() && self.multi_statements.is_none()
    }
}

pub fn replay(client: &Replayable, upstream: &Replayable, last_insert_id: Option<u64>) -> Replay {
    let mut assignments = Vec::new();
    for (name, value) in &client.vars {
        if upstream.vars.get(name) != Some(value) {
            assignments.push(format!("{name} = {}", sql_value(value)));
        }
    }
    for name in upstream.vars.keys() {
        if !client.vars.contains_key(name) {
            assignments.push(format!("{name} = DEFAULT"));
        }
    }
    if let Some(id) = last_insert_id {
        assignments.push(format!("last_insert_id = {id}"));
    }
    Replay {
        set: (!assignments.is_empty()).then(|| format!("SET SESSION {}", assignments.join(", "))),
        schema: match (&client.schema, &upstream.schema) {
            (Some(c), u) if Some(c) != u.as_ref() => Some(c.clone()),
            _ => None,
        },
        multi_statements: (client.multi_statements != upstream.multi_statements)
            .then_some(client.multi_statements),
    }
}

/// A reported value as SQL: numbers bare (numeric variables refuse quoted values), everything
/// else a string literal — as hex when it holds a quote or backslash, which no sql_mode can
/// misread.
pub fn sql_value(v: &str) -> String {
    let numeric = !v.is_empty()
        && v.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
        && v.trim_start_matches('-')
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit());
    if numeric {
        v.to_string()
    } else if v.contains('\'') || v.contains('\\') {
        let hex: String = v.bytes().map(|b| format!("{b:02X}")).collect();
        format!("X'{hex}'")
    } else {
        format!("'{v}'")
    }
}

/// Whether a response's final status says a transaction is open (`None`: unknown, e.g. ERR).
pub fn in_transaction(end: &ResponseEnd) -> Option<bool> {
    end.status
        .map(|s| s & super::protocol::capabilities::SERVER_STATUS_IN_TRANS != 0)
}

#[cfg(test)]
mod tests;
