//! Answers for the commands the proxy handles itself (a shared connection's answer would be
//! another client's, or wrong). Each takes the client's state and appends the reply; none does
//! I/O. Texts match Redis's own where Redis has one, so clients parse them as they expect.

use bytes::{Bytes, BytesMut};

use super::super::command::Local;
use super::super::resp::{self, Command};
use super::super::state::ClientState;
use super::super::upstream::ServerFacts;
use crate::server::Peer;

/// What answering a local command asks the session to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    /// Reply sent; close the connection (QUIT).
    Close,
}

/// Checks `AUTH [user] pass` against the pool's credentials.
pub type CredentialCheck<'a> = &'a dyn Fn(Option<&[u8]>, &[u8]) -> bool;

/// The facts about the pool a local answer may need.
pub struct Ctx<'a> {
    pub peer: &'a Peer,
    pub password_required: bool,
    pub username: &'a str,
    /// `None` when the command needs no facts (they are fetched only for HELLO and SELECT).
    pub facts: Option<&'a ServerFacts>,
    pub check_credentials: CredentialCheck<'a>,
}

pub fn needs_facts(local: Local) -> bool {
    matches!(local, Local::Hello | Local::Select)
}

pub fn wrong_arity(out: &mut BytesMut, cmd: &Command, frame: &[u8]) {
    let name = String::from_utf8_lossy(cmd.arg(frame, 0)).to_ascii_lowercase();
    resp::encode_error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

pub fn noauth(out: &mut BytesMut) {
    resp::encode_error(out, "NOAUTH Authentication required.");
}

pub fn answer(
    local: Local,
    cmd: &Command,
    frame: &[u8],
    st: &mut ClientState,
    ctx: &Ctx,
    out: &mut BytesMut,
) -> After {
    let argc = cmd.argc();
    let arg = |i: usize| cmd.arg(frame, i);
    match local {
        Local::Ping => match argc {
            1 => resp::encode_simple(out, "PONG"),
            2 => resp::encode_bulk(out, arg(1)),
            _ => wrong_arity(out, cmd, frame),
        },
        Local::Quit => {
            resp::encode_simple(out, "OK");
            return After::Close;
        }
        Local::Reset => {
            st.reset(ctx.password_required);
            resp::encode_simple(out, "RESET");
        }
        Local::Auth => match argc {
            2 | 3 => auth(st, ctx, (argc == 3).then(|| arg(1)), arg(argc - 1), out),
            _ => wrong_arity(out, cmd, frame),
        },
        Local::Hello => hello(cmd, frame, st, ctx, out),
        Local::Select => select(cmd, frame, st, ctx, out),
        Local::AclWhoami => resp::encode_bulk(out, ctx.username.as_bytes()),
        Local::ClientId => resp::encode_integer(out, ctx.peer.id as i64),
        Local::ClientGetName => match &st.name {
            Some(n) => resp::encode_bulk(out, n),
            None => resp::encode_null(out, st.resp3),
        },
        Local::ClientSetName => {
            if argc != 3 {
                wrong_arity(out, cmd, frame);
            } else if arg(2).iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                resp::encode_error(
                    out,
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            } else {
                st.name = (!arg(2).is_empty()).then(|| Bytes::copy_from_slice(arg(2)));
                resp::encode_simple(out, "OK");
            }
        }
        Local::ClientSetInfo => {
            if argc != 4 {
                wrong_arity(out, cmd, frame);
            } else if cmd.arg_is(frame, 2, "LIB-NAME") {
                st.lib_name = Some(Bytes::copy_from_slice(arg(3)));
                resp::encode_simple(out, "OK");
            } else if cmd.arg_is(frame, 2, "LIB-VER") {
                st.lib_ver = Some(Bytes::copy_from_slice(arg(3)));
                resp::encode_simple(out, "OK");
            } else {
                let attr = String::from_utf8_lossy(arg(2)).into_owned();
                resp::encode_error(out, &format!("ERR Unrecognized option '{attr}'"));
            }
        }
        Local::ClientInfo => resp::encode_bulk(out, client_info(st, ctx.peer).as_bytes()),
        Local::ClientNoEvict => on_off(cmd, frame, out, |_| None),
        Local::ClientNoTouch => on_off(cmd, frame, out, |on| {
            on.then_some("ERR tidepool: CLIENT NO-TOUCH ON is not supported through the proxy (commands share upstream connections)")
        }),
        Local::ClientMaintNotifications => resp::encode_error(
            out,
            "ERR tidepool: CLIENT MAINT_NOTIFICATIONS is not supported through the proxy",
        ),
    }
    After::Continue
}

fn on_off(
    cmd: &Command,
    frame: &[u8],
    out: &mut BytesMut,
    refuse: impl Fn(bool) -> Option<&'static str>,
) {
    let on = cmd.argc() == 3 && cmd.arg_is(frame, 2, "ON");
    let off = cmd.argc() == 3 && cmd.arg_is(frame, 2, "OFF");
    if !(on || off) {
        resp::encode_error(out, "ERR syntax error");
    } else if let Some(msg) = refuse(on) {
        resp::encode_error(out, msg);
    } else {
        resp::encode_simple(out, "OK");
    }
}

fn auth(st: &mut ClientState, ctx: &Ctx, user: Option<&[u8]>, pass: &[u8], out: &mut BytesMut) {
    if !ctx.password_required {
        resp::encode_error(
            out,
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    } else if (ctx.check_credentials)(user, pass) {
        st.authenticated = true;
        resp::encode_simple(out, "OK");
    } else {
        resp::encode_error(
            out,
            "WRONGPASS invalid username-password pair or user is disabled.",
        );
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
fn hello(cmd: &Command, frame: &[u8], st: &mut ClientState, ctx: &Ctx, out: &mut BytesMut) {
    let mut resp3 = st.resp3;
    let mut i = 1;
    if cmd.argc() > 1 {
        match cmd.arg(frame, 1) {
            b"2" => resp3 = false,
            b"3" => resp3 = true,
            other => {
                if std::str::from_utf8(other)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some()
                {
                    resp::encode_error(out, "NOPROTO unsupported protocol version");
                } else {
                    resp::encode_error(
                        out,
                        "ERR Protocol version is not an integer or out of range",
                    );
                }
                return;
            }
        }
        i = 2;
    }
    let mut auth_with = None;
    let mut name = None;
    while i < cmd.argc() {
        if cmd.arg_is(frame, i, "AUTH") && i + 2 < cmd.argc() {
            auth_with = Some((cmd.arg(frame, i + 1), cmd.arg(frame, i + 2)));
            i += 3;
        } else if cmd.arg_is(frame, i, "SETNAME") && i + 1 < cmd.argc() {
            name = Some(cmd.arg(frame, i + 1));
            i += 2;
        } else {
            let opt = String::from_utf8_lossy(cmd.arg(frame, i)).into_owned();
            resp::encode_error(out, &format!("ERR Syntax error in HELLO option '{opt}'"));
            return;
        }
    }
    if let Some((user, pass)) = auth_with {
        let mut scratch = BytesMut::new();
        auth(st, ctx, Some(user), pass, &mut scratch);
        if !st.authenticated || scratch.first() == Some(&b'-') {
            out.extend_from_slice(&scratch);
            return;
        }
    }
    if !st.authenticated {
        resp::encode_error(
            out,
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
        return;
    }
    if let Some(n) = name {
        if n.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
            resp::encode_error(
                out,
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
            return;
        }
        st.name = (!n.is_empty()).then(|| Bytes::copy_from_slice(n));
    }
    st.resp3 = resp3;
    let version = ctx.facts.map_or("unknown", |f| f.version.as_str());
    resp::encode_map_header(out, 7, resp3);
    resp::encode_bulk(out, b"server");
    resp::encode_bulk(out, b"redis");
    resp::encode_bulk(out, b"version");
    resp::encode_bulk(out, version.as_bytes());
    resp::encode_bulk(out, b"proto");
    resp::encode_integer(out, if resp3 { 3 } else { 2 });
    resp::encode_bulk(out, b"id");
    resp::encode_integer(out, ctx.peer.id as i64);
    resp::encode_bulk(out, b"mode");
    resp::encode_bulk(out, b"standalone");
    resp::encode_bulk(out, b"role");
    resp::encode_bulk(out, b"master");
    resp::encode_bulk(out, b"modules");
    resp::encode_array_header(out, 0);
}

fn select(cmd: &Command, frame: &[u8], st: &mut ClientState, ctx: &Ctx, out: &mut BytesMut) {
    match select_target(cmd, frame, ctx.facts.map_or(16, |f| f.databases)) {
        Ok(db) => {
            st.db = db;
            resp::encode_simple(out, "OK");
        }
        Err(msg) => resp::encode_error(out, msg),
    }
}

/// The db a `SELECT` asks for, checked against the upstream's number of databases; the error
/// texts are Redis's.
pub fn select_target(cmd: &Command, frame: &[u8], databases: u32) -> Result<u16, &'static str> {
    if cmd.argc() != 2 {
        return Err("ERR wrong number of arguments for 'select' command");
    }
    let parsed = std::str::from_utf8(cmd.arg(frame, 1))
        .ok()
        .and_then(|s| s.parse::<i64>().ok());
    match parsed {
        None => Err("ERR value is not an integer or out of range"),
        Some(db) if db < 0 || db >= i64::from(databases) || db > i64::from(u16::MAX) => {
            Err("ERR DB index is out of range")
        }
        Some(db) => Ok(db as u16),
    }
}

fn client_info(st: &ClientState, peer: &Peer) -> String {
    let s = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let flags = if st.in_multi { "x" } else { "N" };
    format!(
        "id={} addr={} laddr={} fd=-1 name={} db={} sub={} psub=0 ssub=0 multi={} watch={} flags={} resp={} lib-name={} lib-ver={}\n",
        peer.id,
        peer.addr,
        peer.local,
        s(&st.name),
        st.db,
        st.subscriptions,
        if st.in_multi { 0 } else { -1 },
        usize::from(st.watching),
        flags,
        if st.resp3 { 3 } else { 2 },
        s(&st.lib_name),
        s(&st.lib_ver),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::resp::{CommandParser, Limits};

    fn run(st: &mut ClientState, words: &[&str], password: bool) -> (String, After) {
        let mut buf = BytesMut::new();
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        resp::encode_command(&mut buf, &args);
        let cmd = CommandParser::new(Limits::default())
            .parse(&buf)
            .unwrap()
            .unwrap();
        let frame = &buf[..cmd.len];
        let local = match crate::redis::command::route(&cmd, frame) {
            crate::redis::command::Route::Local(l) => l,
            other => panic!("{words:?} routed to {other:?}"),
        };
        let peer = Peer {
            id: 42,
            addr: "127.0.0.1:5000".into(),
            local: "127.0.0.1:6380".into(),
            pid: None,
        };
        let facts = ServerFacts {
            version: "7.0.15".into(),
            databases: 16,
        };
        let check = |u: Option<&[u8]>, p: &[u8]| u.is_none_or(|u| u == b"default") && p == b"pw";
        let ctx = Ctx {
            peer: &peer,
            password_required: password,
            username: "default",
            facts: Some(&facts),
            check_credentials: &check,
        };
        let mut out = BytesMut::new();
        let after = answer(local, &cmd, frame, st, &ctx, &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), after)
    }

    #[test]
    fn hello_3_switches_protocol_and_answers_a_map() {
        let mut st = ClientState::new(true);
        let (out, _) = run(&mut st, &["HELLO", "3"], false);
        assert!(st.resp3);
        assert!(out.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"), "{out}");
        let (out, _) = run(&mut st, &["HELLO", "2"], false);
        assert!(!st.resp3 && out.starts_with("*14\r\n"), "{out}");
    }

    #[test]
    fn hello_with_auth_authenticates_or_refuses() {
        let mut st = ClientState::new(false);
        let (out, _) = run(&mut st, &["HELLO", "3"], true);
        assert!(out.starts_with("-NOAUTH"), "{out}");
        let (out, _) = run(&mut st, &["HELLO", "3", "AUTH", "default", "nope"], true);
        assert!(out.starts_with("-WRONGPASS") && !st.authenticated, "{out}");
        let (out, _) = run(
            &mut st,
            &["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "w1"],
            true,
        );
        assert!(out.starts_with("%7") && st.authenticated, "{out}");
        assert_eq!(st.name.as_deref(), Some(&b"w1"[..]));
    }

    #[test]
    fn unsupported_protocol_versions_get_noproto() {
        let mut st = ClientState::new(true);
        assert!(
            run(&mut st, &["HELLO", "4"], false)
                .0
                .starts_with("-NOPROTO")
        );
    }

    #[test]
    fn select_checks_the_upstream_database_count() {
        let mut st = ClientState::new(true);
        assert_eq!(run(&mut st, &["SELECT", "15"], false).0, "+OK\r\n");
        assert_eq!(st.db, 15);
        assert_eq!(
            run(&mut st, &["SELECT", "16"], false).0,
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            run(&mut st, &["SELECT", "x"], false).0,
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(st.db, 15);
    }

    #[test]
    fn client_names_are_per_client_and_validated() {
        let mut st = ClientState::new(true);
        assert_eq!(run(&mut st, &["CLIENT", "GETNAME"], false).0, "$-1\r\n");
        assert_eq!(
            run(&mut st, &["CLIENT", "SETNAME", "worker-1"], false).0,
            "+OK\r\n"
        );
        assert_eq!(
            run(&mut st, &["CLIENT", "GETNAME"], false).0,
            "$8\r\nworker-1\r\n"
        );
        assert!(
            run(&mut st, &["CLIENT", "SETNAME", "a b"], false)
                .0
                .starts_with("-ERR Client names")
        );
        assert_eq!(run(&mut st, &["client", "id"], false).0, ":42\r\n");
    }

    #[test]
    fn auth_without_a_configured_password_is_refused_like_redis() {
        let mut st = ClientState::new(true);
        assert!(
            run(&mut st, &["AUTH", "x"], false)
                .0
                .starts_with("-ERR AUTH <password> called without")
        );
    }

    #[test]
    fn quit_answers_then_closes_and_reset_clears_state() {
        let mut st = ClientState::new(true);
        assert_eq!(
            run(&mut st, &["QUIT"], false),
            ("+OK\r\n".into(), After::Close)
        );
        st.db = 4;
        st.resp3 = true;
        assert_eq!(run(&mut st, &["RESET"], false).0, "+RESET\r\n");
        assert_eq!((st.db, st.resp3), (0, false));
    }
}
