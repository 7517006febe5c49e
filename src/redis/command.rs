//! Where a client command runs: on a shared lane, on a dedicated connection, answered by the
//! proxy, or refused. Pure: it reads the command's words and nothing else.

use super::resp::Command;

/// Why a client needs an upstream connection of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedicatedReason {
    Multi,
    Watch,
    Blocking,
    Subscribe,
    Tracking,
    ClientReply,
}

impl DedicatedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DedicatedReason::Multi => "multi",
            DedicatedReason::Watch => "watch",
            DedicatedReason::Blocking => "blocking command",
            DedicatedReason::Subscribe => "subscription",
            DedicatedReason::Tracking => "client tracking",
            DedicatedReason::ClientReply => "client reply",
        }
    }
}

/// Commands the proxy answers itself, because a shared connection's answer would be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    Auth,
    Hello,
    Select,
    Ping,
    Quit,
    Reset,
    ClientSetName,
    ClientGetName,
    ClientSetInfo,
    ClientId,
    ClientInfo,
    ClientNoEvict,
    ClientNoTouch,
    AclWhoami,
    /// redis-py sends it on RESP3 connections and ignores errors; the upstream would push
    /// notifications on a shared lane.
    ClientMaintNotifications,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Shared,
    Dedicated(DedicatedReason),
    Local(Local),
    /// Refused unless the pool's `allow_commands` lists it (then `Shared`).
    Refused(Refusal),
    /// The client has not authenticated and the command is not one that may come first
    /// (decided by the session, which knows the client's state).
    NoAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The command as named in `allow_commands`, e.g. "CLIENT KILL".
    pub name: &'static str,
    /// Whether `allow_commands` may lift the refusal.
    pub allowable: bool,
}

/// Classifies a command (argc ≥ 1).
pub fn route(cmd: &Command, frame: &[u8]) -> Route {
    use DedicatedReason as D;
    let name = |s: &str| cmd.name_is(frame, s);
    let sub = |s: &str| cmd.argc() > 1 && cmd.arg_is(frame, 1, s);
    let refuse = |name, allowable| Route::Refused(Refusal { name, allowable });

    // Cheap first-byte dispatch keeps the common data commands (GET, SET, INCR, ...) to one
    // or two comparisons.
    let first = cmd.arg(frame, 0).first().map(u8::to_ascii_uppercase);
    match first {
        Some(b'A') if name("AUTH") => Route::Local(Local::Auth),
        Some(b'A') if name("ACL") && sub("WHOAMI") => Route::Local(Local::AclWhoami),
        Some(b'B') if is_blocking_name(cmd, frame) => Route::Dedicated(D::Blocking),
        Some(b'C') if name("CLIENT") => client_subcommand(cmd, frame),
        Some(b'D') if name("DEBUG") => refuse("DEBUG", true),
        Some(b'H') if name("HELLO") => Route::Local(Local::Hello),
        Some(b'M') if name("MULTI") => Route::Dedicated(D::Multi),
        Some(b'M') if name("MONITOR") => refuse("MONITOR", false),
        Some(b'P') if name("PING") => Route::Local(Local::Ping),
        Some(b'P') if name("PSUBSCRIBE") => Route::Dedicated(D::Subscribe),
        Some(b'P') if name("PSYNC") => refuse("PSYNC", false),
        Some(b'Q') if name("QUIT") => Route::Local(Local::Quit),
        Some(b'R') if name("RESET") => Route::Local(Local::Reset),
        Some(b'R') if name("REPLCONF") => refuse("REPLCONF", false),
        Some(b'R') if name("REPLICAOF") => refuse("REPLICAOF", false),
        Some(b'S') if name("SELECT") => Route::Local(Local::Select),
        Some(b'S') if name("SUBSCRIBE") || name("SSUBSCRIBE") => Route::Dedicated(D::Subscribe),
        Some(b'S') if name("SHUTDOWN") => refuse("SHUTDOWN", true),
        Some(b'S') if name("SYNC") => refuse("SYNC", false),
        Some(b'S') if name("SLAVEOF") => refuse("SLAVEOF", false),
        Some(b'S') if name("SCRIPT") && sub("DEBUG") => refuse("SCRIPT DEBUG", false),
        Some(b'W') if name("WATCH") => Route::Dedicated(D::Watch),
        Some(b'W') if name("WAIT") || name("WAITAOF") => Route::Dedicated(D::Blocking),
        Some(b'X') if (name("XREAD") || name("XREADGROUP")) && has_block_option(cmd, frame) => {
            Route::Dedicated(D::Blocking)
        }
        _ => Route::Shared,
    }
}

fn is_blocking_name(cmd: &Command, frame: &[u8]) -> bool {
    const BLOCKING: &[&str] = &[
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
    ];
    BLOCKING.iter().any(|n| cmd.name_is(frame, n))
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS ...`: BLOCK may only appear before STREAMS.
fn has_block_option(cmd: &Command, frame: &[u8]) -> bool {
    (1..cmd.argc())
        .take_while(|&i| !cmd.arg_is(frame, i, "STREAMS"))
        .any(|i| cmd.arg_is(frame, i, "BLOCK"))
}

fn client_subcommand(cmd: &Command, frame: &[u8]) -> Route {
    use DedicatedReason as D;
    let sub = |s: &str| cmd.argc() > 1 && cmd.arg_is(frame, 1, s);
    let refuse = |name, allowable| Route::Refused(Refusal { name, allowable });
    if sub("SETNAME") {
        Route::Local(Local::ClientSetName)
    } else if sub("GETNAME") {
        Route::Local(Local::ClientGetName)
    } else if sub("SETINFO") {
        Route::Local(Local::ClientSetInfo)
    } else if sub("ID") {
        Route::Local(Local::ClientId)
    } else if sub("INFO") {
        Route::Local(Local::ClientInfo)
    } else if sub("NO-EVICT") {
        Route::Local(Local::ClientNoEvict)
    } else if sub("NO-TOUCH") {
        Route::Local(Local::ClientNoTouch)
    } else if sub("MAINT_NOTIFICATIONS") {
        Route::Local(Local::ClientMaintNotifications)
    } else if sub("TRACKING") {
        Route::Dedicated(D::Tracking)
    } else if sub("REPLY") {
        Route::Dedicated(D::ClientReply)
    } else if sub("KILL") {
        refuse("CLIENT KILL", true)
    } else if sub("PAUSE") {
        refuse("CLIENT PAUSE", true)
    } else if sub("UNPAUSE") {
        refuse("CLIENT UNPAUSE", true)
    } else if sub("UNBLOCK") {
        refuse("CLIENT UNBLOCK", true)
    } else {
        Route::Shared
    }
}

/// Whether a command is a (un)subscribe of any kind, and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubSubCommand {
    Subscribe,
    Unsubscribe,
}

pub fn pubsub_kind(cmd: &Command, frame: &[u8]) -> Option<PubSubCommand> {
    const SUBS: &[&str] = &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"];
    const UNSUBS: &[&str] = &["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"];
    if SUBS.iter().any(|n| cmd.name_is(frame, n)) {
        Some(PubSubCommand::Subscribe)
    } else if UNSUBS.iter().any(|n| cmd.name_is(frame, n)) {
        Some(PubSubCommand::Unsubscribe)
    } else {
        None
    }
}
