//! Where the upstream's response to one client command ends: a state machine fed one physical
//! packet at a time, so a session can relay a response as it arrives and still learn the final
//! status flags, OK summary, error, and every session-state change on the way.
//!
//! # Feeding
//!
//! Feed **every physical packet** of the response, in order, as it is relayed. A payload of
//! exactly [`MAX_CHUNK`] (16 MiB − 1) bytes means the logical packet continues in the next
//! physical packet; the tracker interprets only the *first* fragment of a logical packet and
//! passes every continuation through untouched, including the empty packet that ends a
//! payload whose length is an exact multiple of 16 MiB − 1. So a 16 MiB row whose second
//! fragment happens to start with 0xFE is never read as an EOF: the first fragment decides
//! (and a first fragment of [`MAX_CHUNK`] bytes is never a terminator either, as the server's
//! own client checks `len < 0xFFFFFF`).
//!
//! Only the first fragment's first byte and declared length are needed to recognise a row, so
//! [`ResponseTracker::feed_head`] accepts a prefix of a large packet; packets the tracker must
//! read (OK, ERR, EOF, column count, statement-prepare OK) must be given whole — they are small.

use super::ProtocolError;
use super::capabilities::{
    CLIENT_DEPRECATE_EOF, Capabilities, SERVER_MORE_RESULTS_EXISTS, SERVER_SESSION_STATE_CHANGED,
    SERVER_STATUS_CURSOR_EXISTS,
};
use super::command::*;
use super::handshake::AUTH_MORE_DATA_HEADER;
use super::packet::{MAX_CHUNK, Reader};
use super::response::{
    EOF_HEADER, ERR_HEADER, EofPacket, ErrPacket, LOCAL_INFILE_HEADER, OK_HEADER, OkPacket,
    SessionStateChange,
};

/// What a fed packet meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerEvent {
    /// The packet belongs to the response; more follow.
    Continue,
    /// The upstream asked for a LOCAL INFILE file: relay client packets to it until the
    /// client's empty packet (see [`InfileRelay`]), then keep feeding upstream packets.
    LocalInfile,
    /// COM_CHANGE_USER turned into an authentication exchange (auth switch / more data); the
    /// caller takes over from here, this tracker is finished.
    NeedsAuthExchange,
    /// That was the last packet of the response.
    Done(ResponseEnd),
}

/// The role of the next packet in the response, for relaying it to a client that negotiated
/// different framing than the upstream (see [`ResponseTracker::role_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketRole {
    /// The last column or parameter definition of a list, under `CLIENT_DEPRECATE_EOF` (no EOF
    /// follows it from the upstream; a client without that capability expects one).
    LastDefinition,
    /// The EOF / OK(0xFE) that ends rows or a field list.
    ResultTerminator,
    /// An OK packet (header 0x00) that ends a result or a simple command.
    Ok,
    /// Anything else: passed through unchanged.
    Other,
}

/// How a response ended, with what the session engine needs from all of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseEnd {
    /// Status flags of the final OK/EOF. `None` when the response ended with an ERR (which
    /// carries no status: the transaction state is whatever it was) or had no status at all.
    pub status: Option<u16>,
    /// The final OK packet, if the response ended with one.
    pub ok: Option<OkSummary>,
    pub error: Option<ErrPacket>,
    /// The statement-prepare OK, for COM_STMT_PREPARE.
    pub prepared: Option<PreparedOk>,
    /// Session-state changes from *every* OK in the response, in order (a multi-statement can
    /// `SET` in its first statement and end with a result set).
    pub session_state_changes: Vec<SessionStateChange>,
    /// `SERVER_SESSION_STATE_CHANGED` was set in any status of the response.
    pub state_changed: bool,
    /// The last non-zero insert id of any OK in the response.
    pub insert_id: Option<u64>,
}

/// The counters of an OK packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OkSummary {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
}

/// COM_STMT_PREPARE's OK: statement id and shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreparedOk {
    pub stmt_id: u32,
    pub columns: u16,
    pub params: u16,
    pub warnings: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// First packet of a (next) result: OK, ERR, LOCAL INFILE request or column count.
    ResultStart,
    /// Column / parameter definitions still to come.
    Defs {
        left: u64,
        after: AfterDefs,
    },
    /// The EOF after a definition list (sessions without `CLIENT_DEPRECATE_EOF`).
    DefsEof {
        after: AfterDefs,
    },
    /// Rows until the EOF / OK(0xFE) terminator.
    Rows,
    /// OK, ERR, or an EOF from old servers (COM_SET_OPTION, COM_DEBUG).
    Simple,
    PrepareStart,
    FieldList,
    Statistics,
    ChangeUser,
    Done,
    NoResponse,
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterDefs {
    Rows,
    PrepareColumns(u64),
    PrepareDone,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ResponseTracker {
    command: u8,
    caps: Capabilities,
    state: State,
    /// The previous physical packet was [`MAX_CHUNK`] long: this one continues it.
    continuing: bool,
    end: ResponseEnd,
}

impl ResponseTracker {
    /// A tracker for the response to `command`; `caps` are those negotiated with the upstream.
    pub fn new(command: u8, caps: Capabilities) -> Self {
        let state = match command {
            COM_QUERY | COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE | COM_PROCESS_INFO => {
                State::ResultStart
            }
            COM_STMT_FETCH => State::Rows,
            COM_STMT_PREPARE => State::PrepareStart,
            COM_FIELD_LIST => State::FieldList,
            COM_STATISTICS => State::Statistics,
            COM_CHANGE_USER => State::ChangeUser,
            COM_PING | COM_INIT_DB | COM_RESET_CONNECTION | COM_STMT_RESET | COM_SET_OPTION
            | COM_REFRESH | COM_PROCESS_KILL | COM_DEBUG | COM_CREATE_DB | COM_DROP_DB
            | COM_SHUTDOWN => State::Simple,
            COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA | COM_QUIT => State::NoResponse,
            _ => State::Unsupported,
        };
        Self {
            command,
            caps,
            state,
            continuing: false,
            end: ResponseEnd::default(),
        }
    }

    /// False for commands the upstream never answers (COM_STMT_CLOSE,
    /// COM_STMT_SEND_LONG_DATA, COM_QUIT): do not wait for a response.
    pub fn expects_response(&self) -> bool {
        self.state != State::NoResponse
    }

    /// False for commands whose response framing is not implemented (replication, COM_MULTI
    /// …): the session must refuse them rather than forward them.
    pub fn is_supported(&self) -> bool {
        self.state != State::Unsupported
    }

    /// The response has ended (or there is none).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done | State::NoResponse)
    }

    /// What the next packet (first byte `first`, `len` payload bytes) will be; ask before
    /// feeding it.
    pub fn role_of(&self, first: u8, len: usize) -> PacketRole {
        if self.continuing || first == ERR_HEADER {
            return PacketRole::Other;
        }
        match self.state {
            State::Defs { left: 1, .. } if self.caps.contains(CLIENT_DEPRECATE_EOF) => {
                PacketRole::LastDefinition
            }
            State::Rows | State::FieldList if self.is_terminator(first, len) => {
                PacketRole::ResultTerminator
            }
            State::ResultStart | State::Simple | State::ChangeUser if first == OK_HEADER => {
                PacketRole::Ok
            }
            _ => PacketRole::Other,
        }
    }

    /// Feeds one whole physical packet payload.
    pub fn feed(&mut self, payload: &[u8]) -> Result<TrackerEvent, ProtocolError> {
        self.feed_head(payload.len(), payload)
    }

    /// Feeds one physical packet of `len` payload bytes of which `head` is a prefix (at least
    /// the first byte; the whole payload for anything but a row). See the module docs.
    pub fn feed_head(&mut self, len: usize, head: &[u8]) -> Result<TrackerEvent, ProtocolError> {
        let continuation = self.continuing;
        self.continuing = len == MAX_CHUNK;
        if continuation && !self.is_done() {
            return Ok(TrackerEvent::Continue);
        }
        let Some(&first) = head.first() else {
            return match (self.state, len) {
                (State::Statistics, 0) => Ok(self.finish()),
                _ if self.is_done() => Err(self.unexpected(0)),
                _ => Err(ProtocolError::Malformed("empty response packet")),
            };
        };
        if self.is_done() || self.state == State::Unsupported {
            return Err(self.unexpected(first));
        }
        let head = &head[..head.len().min(len)];
        let row =
            self.state == State::Rows && !self.is_terminator(first, len) && first != ERR_HEADER;
        if head.len() < len && !row {
            let max = head.len();
            return Err(ProtocolError::TooLarge {
                what: "response packet head",
                len,
                max,
            });
        }
        if self.continuing && self.state != State::Rows {
            return Err(ProtocolError::Unsupported("split packet outside a row"));
        }
        if first == ERR_HEADER {
            if ErrPacket::is_progress_report(head) {
                return Ok(TrackerEvent::Continue);
            }
            self.end.error = Some(ErrPacket::decode(head)?);
            return Ok(self.finish());
        }
        self.step(first, len, head)
    }

    /// EOF, or OK(0xFE) under `CLIENT_DEPRECATE_EOF`; never a [`MAX_CHUNK`] first fragment.
    fn is_terminator(&self, first: u8, len: usize) -> bool {
        first == EOF_HEADER
            && len < MAX_CHUNK
            && (self.caps.contains(CLIENT_DEPRECATE_EOF) || len < 9)
    }

    fn step(
        &mut self,
        first: u8,
        len: usize,
        payload: &[u8],
    ) -> Result<TrackerEvent, ProtocolError> {
        match self.state {
            State::ResultStart => match first {
                OK_HEADER => {
                    let status = self.absorb_ok(payload)?;
                    Ok(self.end_result(status))
                }
                LOCAL_INFILE_HEADER if self.command == COM_QUERY => Ok(TrackerEvent::LocalInfile),
                EOF_HEADER | LOCAL_INFILE_HEADER => Err(self.unexpected(first)),
                _ => {
                    let columns = Reader::new(payload).lenenc_int("column count")?;
                    if columns == 0 {
                        return Err(ProtocolError::Malformed("column count"));
                    }
                    self.state = State::Defs {
                        left: columns,
                        after: AfterDefs::Rows,
                    };
                    Ok(TrackerEvent::Continue)
                }
            },
            State::Defs { left, after } => {
                if left > 1 {
                    self.state = State::Defs {
                        left: left - 1,
                        after,
                    };
                    return Ok(TrackerEvent::Continue);
                }
                if self.caps.contains(CLIENT_DEPRECATE_EOF) {
                    return Ok(self.enter(after));
                }
                self.state = State::DefsEof { after };
                Ok(TrackerEvent::Continue)
            }
            State::DefsEof { after } => {
                let eof = EofPacket::decode(payload, self.caps)?;
                self.absorb_status(eof.status);
                // An execute that opened a cursor sends metadata only; rows come by COM_STMT_FETCH.
                let cursor = eof.status & SERVER_STATUS_CURSOR_EXISTS != 0;
                if after == AfterDefs::Rows && self.command != COM_QUERY && cursor {
                    return Ok(self.finish());
                }
                Ok(self.enter(after))
            }
            State::Rows => {
                if !self.is_terminator(first, len) {
                    return Ok(TrackerEvent::Continue);
                }
                let status = self.absorb_terminator(payload)?;
                Ok(self.end_result(status))
            }
            State::Simple => match first {
                OK_HEADER => {
                    self.absorb_ok(payload)?;
                    Ok(self.finish())
                }
                EOF_HEADER => {
                    self.absorb_terminator(payload)?;
                    Ok(self.finish())
                }
                _ => Err(self.unexpected(first)),
            },
            State::PrepareStart => {
                if first != OK_HEADER {
                    return Err(self.unexpected(first));
                }
                let prepared = decode_prepare_ok(payload)?;
                self.end.prepared = Some(prepared);
                let (params, columns) = (u64::from(prepared.params), u64::from(prepared.columns));
                if params > 0 {
                    self.state = State::Defs {
                        left: params,
                        after: AfterDefs::PrepareColumns(columns),
                    };
                    return Ok(TrackerEvent::Continue);
                }
                Ok(self.enter(AfterDefs::PrepareColumns(columns)))
            }
            State::FieldList => {
                if !self.is_terminator(first, len) {
                    return Ok(TrackerEvent::Continue);
                }
                self.absorb_terminator(payload)?;
                Ok(self.finish())
            }
            State::Statistics => Ok(self.finish()),
            State::ChangeUser => match first {
                OK_HEADER => {
                    self.absorb_ok(payload)?;
                    Ok(self.finish())
                }
                EOF_HEADER | AUTH_MORE_DATA_HEADER => {
                    self.state = State::Done;
                    Ok(TrackerEvent::NeedsAuthExchange)
                }
                _ => Err(self.unexpected(first)),
            },
            State::Done | State::NoResponse | State::Unsupported => Err(self.unexpected(first)),
        }
    }

    /// Moves past a finished definition list.
    fn enter(&mut self, after: AfterDefs) -> TrackerEvent {
        match after {
            AfterDefs::Rows => {
                self.state = State::Rows;
                TrackerEvent::Continue
            }
            AfterDefs::PrepareColumns(n) if n > 0 => {
                self.state = State::Defs {
                    left: n,
                    after: AfterDefs::PrepareDone,
                };
                TrackerEvent::Continue
            }
            AfterDefs::PrepareColumns(_) | AfterDefs::PrepareDone => self.finish(),
        }
    }

    /// One result (OK or result set) ended with `status`: another follows or we are done.
    fn end_result(&mut self, status: u16) -> TrackerEvent {
        if status & SERVER_MORE_RESULTS_EXISTS != 0 {
            self.state = State::ResultStart;
            return TrackerEvent::Continue;
        }
        self.finish()
    }

    fn finish(&mut self) -> TrackerEvent {
        self.state = State::Done;
        if self.end.error.is_some() {
            self.end.status = None;
        }
        TrackerEvent::Done(std::mem::take(&mut self.end))
    }

    fn absorb_status(&mut self, status: u16) {
        self.end.status = Some(status);
        self.end.state_changed |= status & SERVER_SESSION_STATE_CHANGED != 0;
    }

    fn absorb_ok(&mut self, payload: &[u8]) -> Result<u16, ProtocolError> {
        let ok = OkPacket::decode(payload, self.caps)?;
        self.absorb_status(ok.status);
        if ok.last_insert_id != 0 {
            self.end.insert_id = Some(ok.last_insert_id);
        }
        self.end.ok = Some(OkSummary {
            affected_rows: ok.affected_rows,
            last_insert_id: ok.last_insert_id,
            warnings: ok.warnings,
        });
        self.end
            .session_state_changes
            .extend(ok.session_state_changes);
        Ok(ok.status)
    }

    /// An EOF, or under `CLIENT_DEPRECATE_EOF` the OK(0xFE) that replaces it.
    fn absorb_terminator(&mut self, payload: &[u8]) -> Result<u16, ProtocolError> {
        if self.caps.contains(CLIENT_DEPRECATE_EOF) {
            return self.absorb_ok(payload);
        }
        let eof = EofPacket::decode(payload, self.caps)?;
        self.absorb_status(eof.status);
        Ok(eof.status)
    }

    fn unexpected(&self, header: u8) -> ProtocolError {
        let context = match self.state {
            State::Done => "after the end of the response",
            State::NoResponse => "for a command that has no response",
            State::Unsupported => "for an unsupported command",
            _ => "in the response",
        };
        ProtocolError::Unexpected { context, header }
    }
}

/// COM_STMT_PREPARE OK: 0x00, statement id, columns, params, filler, warnings (the warning
/// count is absent in some old servers' 9-byte form).
fn decode_prepare_ok(payload: &[u8]) -> Result<PreparedOk, ProtocolError> {
    let mut r = Reader::new(payload);
    r.skip(1, "prepare OK header")?;
    let stmt_id = r.u32("prepare OK statement id")?;
    let columns = r.u16("prepare OK column count")?;
    let params = r.u16("prepare OK parameter count")?;
    let warnings = if r.remaining() >= 3 {
        r.skip(1, "prepare OK filler")?;
        r.u16("prepare OK warnings")?
    } else {
        0
    };
    Ok(PreparedOk {
        stmt_id,
        columns,
        params,
        warnings,
    })
}

/// Follows the client's file data after a LOCAL INFILE request: it ends with an empty packet
/// — but not the empty trailer of a payload split at exactly 16 MiB − 1.
#[derive(Debug, Clone, Copy, Default)]
pub struct InfileRelay {
    continuing: bool,
}

impl InfileRelay {
    /// Feeds the payload length of one client packet; true when it was the last one.
    pub fn feed(&mut self, payload_len: usize) -> bool {
        let continuation = self.continuing;
        self.continuing = payload_len == MAX_CHUNK;
        payload_len == 0 && !continuation
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod mariadb_captures;
