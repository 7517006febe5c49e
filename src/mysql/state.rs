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
    PreparedStatement,
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
            PinReason::PreparedStatement => "prepared statement (COM_STMT_PREPARE)",
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
}

/// Scans a `COM_QUERY` statement.
pub fn scan_statement(sql: &[u8]) -> StatementScan {
    let mut s = StatementScan::default();
    let first = sqlscan::first_keyword(sql);
    let toks: Vec<Token<'_>> = sqlscan::Lexer::new(sql)
        .map(|t| t.token)
        .take(4096)
        .collect();
    let word = |t: &Token<'_>, w: &str| matches!(t, Token::Word(x) if x.eq_ignore_ascii_case(w.as_bytes()));
    let has_word = |w: &str| toks.iter().any(|t| word(t, w));
    let user_var = |t: &Token<'_>| matches!(t, Token::Variable(v) if !v.starts_with(b"@@"));
    let assigns_user_var = toks
        .windows(2)
        .any(|w| user_var(&w[0]) && matches!(w[1], Token::Punct(b'=') | Token::Punct(b':')))
        || toks
            .windows(2)
            .any(|w| word(&w[0], "INTO") && user_var(&w[1]));
    match first.as_deref() {
        Some("SET") if assigns_user_var => s.pins.push(PinReason::UserVariable),
        Some("SET") if toks.get(1).is_some_and(|t| word(t, "TRANSACTION")) => {
            s.pins.push(PinReason::TransactionCharacteristics)
        }
        Some("CREATE") if has_word("TEMPORARY") => s.pins.push(PinReason::TemporaryTable),
        Some("PREPARE") => s.pins.push(PinReason::SqlPrepare),
        Some("LOCK") => s.pins.push(PinReason::LockTables),
        Some("UNLOCK") => s.releases.push(PinReason::LockTables),
        Some("HANDLER") => s.pins.push(PinReason::Handler),
        Some("COMMIT" | "ROLLBACK") => {
            s.ends_transaction = !has_word("CHAIN") && !has_word("TO") && !has_word("RELEASE");
        }
        _ if assigns_user_var => s.pins.push(PinReason::UserVariable),
        _ => {}
    }
    if sqlscan::calls_function(sql, "GET_LOCK") {
        s.pins.push(PinReason::GetLock);
    }
    if sqlscan::calls_function(sql, "RELEASE_ALL_LOCKS") {
        s.releases.push(PinReason::GetLock);
    }
    if has_word("SQL_CALC_FOUND_ROWS") {
        s.pins.push(PinReason::FoundRows);
    } else if sqlscan::calls_function(sql, "FOUND_ROWS") {
        s.releases.push(PinReason::FoundRows);
    }
    s.reads_last_insert_id = sqlscan::calls_function(sql, "LAST_INSERT_ID");
    s
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
