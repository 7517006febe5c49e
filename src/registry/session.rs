//! One live client session as the control plane sees it, and the RAII handle through which its
//! engine reports. Hot-path reports are single atomic stores or adds; only strings that change
//! rarely (user, db, pin reason, last statement) sit behind an uncontended mutex.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::pool::PoolEntry;
use super::process::{self, ProcessInfo};
use super::{Clock, ErrorKind, Registry};
use crate::config::Protocol;

/// What a session is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum SessionState {
    /// Waiting for its client; holds nothing.
    Idle = 0,
    /// A command is running or its answer is being relayed.
    Active = 1,
    /// Queued for an upstream connection (or held by `pause`).
    Waiting = 2,
    /// Holds an upstream connection of its own between commands (see the pin reason).
    Pinned = 3,
    /// Inside a transaction (MySQL transaction, Redis MULTI), holding its upstream.
    InTransaction = 4,
}

impl SessionState {
    fn from_u8(v: u8) -> SessionState {
        match v {
            1 => SessionState::Active,
            2 => SessionState::Waiting,
            3 => SessionState::Pinned,
            4 => SessionState::InTransaction,
            _ => SessionState::Idle,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Active => "active",
            SessionState::Waiting => "waiting",
            SessionState::Pinned => "pinned",
            SessionState::InTransaction => "in_transaction",
        }
    }

    /// Whether the client, not the upstream, is the one everybody waits for.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            SessionState::Idle | SessionState::Pinned | SessionState::InTransaction
        )
    }
}

/// Why the control plane closed a session: the text is what the client is told.
#[derive(Debug, Clone)]
pub struct CloseReason {
    pub message: String,
    pub kind: ErrorKind,
}

/// The last thing the client asked for, kept raw and bounded; rendered (masked) only when shown.
#[derive(Debug, Default)]
pub(super) enum Statement {
    #[default]
    None,
    /// Redis: the command name and how many arguments followed; values are never kept.
    Command { name: String, args: usize },
    /// SQL text, at most `MAX_STATEMENT` bytes, masked when displayed.
    Sql(Vec<u8>),
}

/// The most SQL kept per session (the prefix is all an operator needs to recognise it).
pub const MAX_STATEMENT: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Text {
    pub user: String,
    pub db: String,
    /// Pin reason and since when (clock ms).
    pub pin: Option<(Cow<'static, str>, u64)>,
    pub statement: Statement,
}

/// Everything the registry knows about one session.
pub struct SessionInfo {
    pub id: u64,
    pub pool: Arc<PoolEntry>,
    pub protocol: Protocol,
    /// `ip:port`, or `unix`.
    pub addr: String,
    /// For Unix-socket clients: the peer's pid from SO_PEERCRED, taken at accept.
    pub peer_pid: Option<u32>,
    pub connected_at: SystemTime,
    pub(super) clock: Clock,
    state: AtomicU8,
    /// Clock ms of the last byte from the client or the last answer to it.
    last_activity: AtomicU64,
    /// Clock ms + 1 since an upstream connection is held; 0 = none.
    upstream_since: AtomicU64,
    /// Whether holding the upstream while idle counts as a leak (transactions, watches — not
    /// subscriptions or blocking commands, which are idle by design).
    leakable: AtomicBool,
    pub(super) leaked: AtomicBool,
    pub(super) commands: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) text: Mutex<Text>,
    close: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    process: OnceLock<Option<ProcessInfo>>,
}

impl SessionInfo {
    pub(super) fn new(
        id: u64,
        pool: Arc<PoolEntry>,
        protocol: Protocol,
        addr: String,
        peer_pid: Option<u32>,
        clock: Clock,
    ) -> SessionInfo {
        let now = clock.now_ms();
        SessionInfo {
            id,
            pool,
            protocol,
            addr,
            peer_pid,
            connected_at: SystemTime::now(),
            clock,
            state: AtomicU8::new(SessionState::Idle as u8),
            last_activity: AtomicU64::new(now),
            upstream_since: AtomicU64::new(0),
            leakable: AtomicBool::new(false),
            leaked: AtomicBool::new(false),
            commands: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            text: Mutex::new(Text::default()),
            close: CancellationToken::new(),
            close_reason: Mutex::new(None),
            process: OnceLock::new(),
        }
    }

    pub fn state(&self) -> SessionState {
        SessionState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// How long the session has been waiting for its client (zero while it is not idle).
    pub fn idle_ms(&self, now: u64) -> u64 {
        if self.state().is_idle() {
            now.saturating_sub(self.last_activity.load(Ordering::Relaxed))
        } else {
            0
        }
    }

    /// Clock ms since which an upstream is held.
    pub fn upstream_since(&self) -> Option<u64> {
        match self.upstream_since.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v - 1),
        }
    }

    pub fn last_activity_ms(&self) -> u64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    pub fn is_leakable(&self) -> bool {
        self.leakable.load(Ordering::Relaxed) && self.upstream_since().is_some()
    }

    pub fn is_leaked(&self) -> bool {
        self.leaked.load(Ordering::Relaxed)
    }

    pub(super) fn text(&self) -> std::sync::MutexGuard<'_, Text> {
        self.text.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The local process owning the client's socket, looked up once, the first time anyone asks.
    pub fn process(&self) -> Option<&ProcessInfo> {
        self.process
            .get_or_init(|| match self.peer_pid {
                Some(pid) => Some(process::describe(pid)),
                None => process::owner_of_tcp_peer(&self.addr),
            })
            .as_ref()
    }

    /// Asks the session to close; the first reason wins.
    pub fn close(&self, reason: CloseReason) -> bool {
        let mut r = self.close_reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_some() {
            return false;
        }
        *r = Some(reason);
        drop(r);
        self.close.cancel();
        true
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The engine's side of a registry entry. Dropping it removes the session from the registry.
pub struct SessionHandle {
    info: Arc<SessionInfo>,
    registry: Arc<Registry>,
}

impl SessionHandle {
    pub(super) fn new(info: Arc<SessionInfo>, registry: Arc<Registry>) -> SessionHandle {
        SessionHandle { info, registry }
    }

    pub fn id(&self) -> u64 {
        self.info.id
    }

    pub fn info(&self) -> &Arc<SessionInfo> {
        &self.info
    }

    pub fn pool(&self) -> &Arc<PoolEntry> {
        &self.info.pool
    }

    /// Reports the session's state; also counts as activity when it changes.
    pub fn set_state(&self, state: SessionState) {
        let old = self.info.state.swap(state as u8, Ordering::Relaxed);
        if old != state as u8 {
            self.touch();
        }
    }

    /// Records activity (bytes from the client, an answer to it): the idle clock restarts and a
    /// leaked mark is lifted.
    pub fn touch(&self) {
        let i = &self.info;
        i.last_activity.store(i.clock.now_ms(), Ordering::Relaxed);
        if i.leaked.load(Ordering::Relaxed) {
            i.leaked.store(false, Ordering::Relaxed);
        }
    }

    /// `n` commands received, `bytes` read from the client.
    pub fn received(&self, n: u64, bytes: u64) {
        let i = &self.info;
        if n > 0 {
            i.commands.fetch_add(n, Ordering::Relaxed);
        }
        i.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.touch();
    }

    pub fn sent(&self, bytes: u64) {
        self.info.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The session now holds an upstream connection of its own.
    pub fn upstream_acquired(&self) {
        let now = self.info.clock.now_ms();
        self.info.upstream_since.store(now + 1, Ordering::Relaxed);
    }

    pub fn upstream_released(&self) {
        self.info.upstream_since.store(0, Ordering::Relaxed);
        self.unpin();
    }

    /// Records why the session is pinned (`leakable`: whether idling in this state is a leak).
    /// The since-time is kept while the reason stays the same.
    pub fn pin(&self, reason: impl Into<Cow<'static, str>>, leakable: bool) {
        let reason = reason.into();
        self.info.leakable.store(leakable, Ordering::Relaxed);
        let mut t = self.info.text();
        if t.pin.as_ref().is_none_or(|(r, _)| *r != reason) {
            t.pin = Some((reason, self.info.clock.now_ms()));
        }
    }

    pub fn unpin(&self) {
        self.info.leakable.store(false, Ordering::Relaxed);
        let mut t = self.info.text();
        t.pin = None;
    }

    pub fn set_user(&self, user: &str) {
        let mut t = self.info.text();
        if t.user != user {
            t.user = user.to_owned();
        }
    }

    pub fn set_db(&self, db: &str) {
        let mut t = self.info.text();
        if t.db != db {
            t.db = db.to_owned();
        }
    }

    /// Redis: the last command's name and argument count (values are never recorded).
    pub fn statement_command(&self, name: &[u8], args: usize) {
        let mut t = self.info.text();
        let name = &name[..name.len().min(32)];
        match &mut t.statement {
            Statement::Command { name: n, args: a } => {
                n.clear();
                n.push_str(&String::from_utf8_lossy(name));
                *a = args;
            }
            other => {
                *other = Statement::Command {
                    name: String::from_utf8_lossy(name).into_owned(),
                    args,
                }
            }
        }
    }

    /// MySQL: the statement's first `MAX_STATEMENT` bytes, raw (masked when displayed).
    pub fn statement_sql(&self, sql: &[u8]) {
        let sql = &sql[..sql.len().min(MAX_STATEMENT)];
        let mut t = self.info.text();
        match &mut t.statement {
            Statement::Sql(buf) => {
                buf.clear();
                buf.extend_from_slice(sql);
            }
            other => *other = Statement::Sql(sql.to_vec()),
        }
    }

    /// Resolves when the control plane asks this session to close (`kill`, a timeout); then
    /// `close_reason` says why. Cancel-safe, for `select!`.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.info.close.cancelled()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.info.close_reason()
    }

    /// Counts an error of `kind` against the pool.
    pub fn error(&self, kind: ErrorKind) {
        self.info.pool.stats.error(kind);
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.registry.unregister(self.info.id);
    }
}
