//! A client's session state: what the proxy answers for it (db, protocol, name, identity) and
//! what ties it to a dedicated upstream connection (MULTI, WATCH, subscriptions, tracking,
//! reply mode). The dedicated connection goes back to the pool only when `holds_upstream()` is
//! false and no reply is outstanding.

use bytes::Bytes;

use super::command::{DedicatedReason, PubSubCommand, pubsub_kind};
use super::resp::Command;

#[derive(Debug, Default, Clone)]
pub struct ClientState {
    pub db: u16,
    pub resp3: bool,
    pub authenticated: bool,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    pub in_multi: bool,
    pub watching: bool,
    /// Channels + patterns + shard channels, as the upstream last reported.
    pub subscriptions: usize,
    /// (Un)subscribe confirmations still to come; `None` after an UNSUBSCRIBE with no
    /// arguments, whose count only the upstream knows (then we wait for a count of 0).
    pub pending_confirmations: Option<usize>,
    pub tracking: bool,
    pub reply: ReplyMode,
}

/// `CLIENT REPLY`: whether the upstream answers the client's commands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    SkipNext,
}

impl ClientState {
    pub fn new(authenticated: bool) -> Self {
        ClientState {
            authenticated,
            pending_confirmations: Some(0),
            ..Default::default()
        }
    }

    /// Whether the client has state only its current upstream connection holds.
    pub fn holds_upstream(&self) -> bool {
        self.in_multi
            || self.watching
            || self.subscriptions > 0
            || self.pending_confirmations != Some(0)
            || self.tracking
            || self.reply != ReplyMode::On
    }

    /// The reason shown to operators, the strongest first.
    pub fn pin_reason(&self) -> Option<DedicatedReason> {
        if self.in_multi {
            Some(DedicatedReason::Multi)
        } else if self.watching {
            Some(DedicatedReason::Watch)
        } else if self.subscriptions > 0 || self.pending_confirmations != Some(0) {
            Some(DedicatedReason::Subscribe)
        } else if self.tracking {
            Some(DedicatedReason::Tracking)
        } else if self.reply != ReplyMode::On {
            Some(DedicatedReason::ClientReply)
        } else {
            None
        }
    }

    /// Updates the state for a command written to a dedicated connection and returns how many
    /// replies it will produce that answer it in order (pub/sub confirmations are counted
    /// separately, by `confirmation_received`). Conservative: a command that might have started
    /// a state is taken to have started it (holding the connection a little longer is safe;
    /// releasing it early is not).
    pub fn command_sent(&mut self, cmd: &Command, frame: &[u8]) -> usize {
        let name = |s: &str| cmd.name_is(frame, s);
        let sub = |s: &str| cmd.argc() > 1 && cmd.arg_is(frame, 1, s);
        if name("CLIENT") && sub("REPLY") {
            let arg = |s: &str| cmd.argc() > 2 && cmd.arg_is(frame, 2, s);
            // OFF and SKIP are themselves unanswered; ON is answered.
            return if arg("ON") {
                self.reply = ReplyMode::On;
                1
            } else {
                self.reply = if arg("SKIP") && self.reply == ReplyMode::On {
                    ReplyMode::SkipNext
                } else {
                    ReplyMode::Off
                };
                0
            };
        }
        let answered = match self.reply {
            ReplyMode::On => true,
            ReplyMode::Off => false,
            ReplyMode::SkipNext => {
                self.reply = ReplyMode::On;
                false
            }
        };
        if name("MULTI") {
            self.in_multi = true;
        } else if name("EXEC") || name("DISCARD") {
            self.in_multi = false;
            self.watching = false;
        } else if name("WATCH") {
            if !self.in_multi {
                self.watching = true;
            }
        } else if name("UNWATCH") {
            if !self.in_multi {
                self.watching = false;
            }
        } else if name("CLIENT") && sub("TRACKING") {
            self.tracking = cmd.argc() > 2 && cmd.arg_is(frame, 2, "ON");
        } else if let Some(kind) = pubsub_kind(cmd, frame) {
            let channels = cmd.argc() - 1;
            self.pending_confirmations = match (kind, channels, self.pending_confirmations) {
                (PubSubCommand::Unsubscribe, 0, _) | (_, _, None) => None,
                (_, n, Some(p)) => Some(p + n),
            };
            return 0;
        }
        usize::from(answered)
    }

    /// Updates the state for a subscribe/unsubscribe confirmation carrying the upstream's
    /// subscription count.
    pub fn confirmation_received(&mut self, count: usize) {
        self.subscriptions = count;
        self.pending_confirmations = match self.pending_confirmations {
            Some(p) => Some(p.saturating_sub(1)),
            None if count == 0 => Some(0),
            None => None,
        };
    }

    /// `RESET`: the state a fresh connection has, except that an identity that needs no
    /// password stays authenticated.
    pub fn reset(&mut self, password_required: bool) {
        *self = ClientState::new(!password_required);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::resp::{CommandParser, Limits};

    fn send(state: &mut ClientState, words: &[&str]) -> usize {
        let mut buf = bytes::BytesMut::new();
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        crate::redis::resp::encode_command(&mut buf, &args);
        let cmd = CommandParser::new(Limits::default())
            .parse(&buf)
            .unwrap()
            .unwrap();
        state.command_sent(&cmd, &buf[..cmd.len])
    }

    #[test]
    fn multi_holds_until_exec_or_discard() {
        let mut s = ClientState::new(true);
        send(&mut s, &["MULTI"]);
        assert_eq!(s.pin_reason(), Some(DedicatedReason::Multi));
        send(&mut s, &["WATCH", "k"]);
        assert!(!s.watching, "WATCH inside MULTI is an error, not a watch");
        send(&mut s, &["exec"]);
        assert!(!s.holds_upstream());
    }

    #[test]
    fn watch_holds_until_unwatch_or_exec() {
        let mut s = ClientState::new(true);
        send(&mut s, &["WATCH", "a", "b"]);
        assert_eq!(s.pin_reason(), Some(DedicatedReason::Watch));
        send(&mut s, &["UNWATCH"]);
        assert!(!s.holds_upstream());
        send(&mut s, &["WATCH", "a"]);
        send(&mut s, &["MULTI"]);
        send(&mut s, &["EXEC"]);
        assert!(!s.holds_upstream(), "EXEC ends the watch too");
    }

    #[test]
    fn subscriptions_hold_until_the_upstream_counts_zero() {
        let mut s = ClientState::new(true);
        send(&mut s, &["SUBSCRIBE", "a", "b"]);
        assert_eq!(s.pending_confirmations, Some(2));
        s.confirmation_received(1);
        s.confirmation_received(2);
        assert!(s.holds_upstream());
        send(&mut s, &["UNSUBSCRIBE"]);
        assert_eq!(
            s.pending_confirmations, None,
            "how many confirmations come is unknown"
        );
        s.confirmation_received(1);
        assert!(s.holds_upstream());
        s.confirmation_received(0);
        assert!(!s.holds_upstream());
    }

    #[test]
    fn tracking_and_reply_mode_hold_until_switched_back() {
        let mut s = ClientState::new(true);
        send(&mut s, &["CLIENT", "TRACKING", "on"]);
        assert_eq!(s.pin_reason(), Some(DedicatedReason::Tracking));
        send(&mut s, &["CLIENT", "TRACKING", "off"]);
        assert!(!s.holds_upstream());
        assert_eq!(send(&mut s, &["CLIENT", "REPLY", "SKIP"]), 0);
        assert_eq!(s.pin_reason(), Some(DedicatedReason::ClientReply));
        assert_eq!(
            send(&mut s, &["GET", "k"]),
            0,
            "the skipped command is not answered"
        );
        assert!(!s.holds_upstream(), "SKIP covers one command");
        assert_eq!(send(&mut s, &["CLIENT", "REPLY", "OFF"]), 0);
        assert_eq!(send(&mut s, &["SET", "k", "v"]), 0);
        assert!(s.holds_upstream());
        assert_eq!(send(&mut s, &["CLIENT", "REPLY", "ON"]), 1);
        assert!(!s.holds_upstream());
    }

    #[test]
    fn pubsub_commands_are_answered_by_confirmations_not_replies() {
        let mut s = ClientState::new(true);
        assert_eq!(send(&mut s, &["PSUBSCRIBE", "a*"]), 0);
        assert_eq!(send(&mut s, &["PING"]), 1);
    }

    #[test]
    fn reset_keeps_authentication_only_without_a_password() {
        let mut s = ClientState::new(true);
        s.db = 3;
        s.reset(true);
        assert!(!s.authenticated && s.db == 0);
        s.reset(false);
        assert!(s.authenticated);
    }
}
