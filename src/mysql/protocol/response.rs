//! Generic response packets: OK (with session-state tracking), ERR and EOF — building them for
//! clients and reading them from upstreams — plus the header tests that tell them apart.

use bytes::{BufMut, BytesMut};

use super::capabilities::{
    CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, Capabilities,
    SERVER_SESSION_STATE_CHANGED,
};
use super::packet::{MAX_CHUNK, Reader, put_lenenc_bytes, put_lenenc_int};
use super::{ProtocolError, packet};

pub const OK_HEADER: u8 = 0x00;
pub const EOF_HEADER: u8 = 0xFE;
pub const ERR_HEADER: u8 = 0xFF;
pub const LOCAL_INFILE_HEADER: u8 = 0xFB;

/// MariaDB progress reports use this error code (and never end a response).
pub const PROGRESS_REPORT_CODE: u16 = 0xFFFF;

/// Session-state change types (`enum_session_state_type`).
pub const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
pub const SESSION_TRACK_SCHEMA: u8 = 1;
pub const SESSION_TRACK_STATE_CHANGE: u8 = 2;
pub const SESSION_TRACK_GTIDS: u8 = 3;
pub const SESSION_TRACK_TRANSACTION_CHARACTERISTICS: u8 = 4;
pub const SESSION_TRACK_TRANSACTION_STATE: u8 = 5;

/// One entry of an OK packet's session-state info. Text that is not UTF-8 is kept raw as
/// `Other`, so it is never replayed altered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStateChange {
    SystemVariable {
        name: String,
        value: String,
    },
    Schema(String),
    /// `session_track_state_change`: something untracked changed (user variables, temporary
    /// tables, SQL PREPARE …).
    StateChanged(bool),
    Gtids(Vec<u8>),
    TransactionCharacteristics(String),
    /// The 8-character `session_track_transaction_info` string, e.g. `T_______`.
    TransactionState(String),
    Other {
        kind: u8,
        data: Vec<u8>,
    },
}

impl SessionStateChange {
    fn decode(kind: u8, data: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(data);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        let change = match kind {
            SESSION_TRACK_SYSTEM_VARIABLES => {
                let name = r.lenenc_bytes("session-track variable name")?;
                let value = r.lenenc_bytes("session-track variable value")?;
                text(name)
                    .zip(text(value))
                    .map(|(name, value)| Self::SystemVariable { name, value })
            }
            SESSION_TRACK_SCHEMA => text(r.lenenc_bytes("session-track schema")?).map(Self::Schema),
            // The flag is the bare character '1' or '0', not a length-encoded string (as
            // both MySQL and MariaDB send it, whatever the docs say).
            SESSION_TRACK_STATE_CHANGE => Some(Self::StateChanged(data == b"1")),
            SESSION_TRACK_GTIDS => Some(Self::Gtids(data.to_vec())),
            SESSION_TRACK_TRANSACTION_CHARACTERISTICS => {
                text(r.lenenc_bytes("session-track characteristics")?)
                    .map(Self::TransactionCharacteristics)
            }
            SESSION_TRACK_TRANSACTION_STATE => {
                text(r.lenenc_bytes("session-track transaction state")?).map(Self::TransactionState)
            }
            _ => None,
        };
        Ok(change.unwrap_or_else(|| Self::Other {
            kind,
            data: data.to_vec(),
        }))
    }

    fn encode(&self, out: &mut BytesMut) {
        let mut data = BytesMut::new();
        let kind = match self {
            Self::SystemVariable { name, value } => {
                put_lenenc_bytes(&mut data, name.as_bytes());
                put_lenenc_bytes(&mut data, value.as_bytes());
                SESSION_TRACK_SYSTEM_VARIABLES
            }
            Self::Schema(s) => {
                put_lenenc_bytes(&mut data, s.as_bytes());
                SESSION_TRACK_SCHEMA
            }
            Self::StateChanged(b) => {
                data.put_u8(if *b { b'1' } else { b'0' });
                SESSION_TRACK_STATE_CHANGE
            }
            Self::Gtids(raw) => {
                data.put_slice(raw);
                SESSION_TRACK_GTIDS
            }
            Self::TransactionCharacteristics(s) => {
                put_lenenc_bytes(&mut data, s.as_bytes());
                SESSION_TRACK_TRANSACTION_CHARACTERISTICS
            }
            Self::TransactionState(s) => {
                put_lenenc_bytes(&mut data, s.as_bytes());
                SESSION_TRACK_TRANSACTION_STATE
            }
            Self::Other { kind, data: raw } => {
                data.put_slice(raw);
                *kind
            }
        };
        out.put_u8(kind);
        put_lenenc_bytes(out, &data);
    }
}

/// An OK packet (protocol 4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    pub info: Vec<u8>,
    pub session_state_changes: Vec<SessionStateChange>,
}

impl OkPacket {
    /// Appends the payload with header 0x00.
    pub fn encode(&self, out: &mut BytesMut, caps: Capabilities) {
        self.encode_with_header(out, caps, OK_HEADER);
    }

    /// Appends the payload with header 0xFE: the OK that ends a result set (or answers
    /// COM_SET_OPTION and friends) for `CLIENT_DEPRECATE_EOF` clients.
    pub fn encode_as_eof(&self, out: &mut BytesMut, caps: Capabilities) {
        self.encode_with_header(out, caps, EOF_HEADER);
    }

    fn encode_with_header(&self, out: &mut BytesMut, caps: Capabilities, header: u8) {
        out.put_u8(header);
        put_lenenc_int(out, self.affected_rows);
        put_lenenc_int(out, self.last_insert_id);
        let track = caps.contains(CLIENT_SESSION_TRACK) && !self.session_state_changes.is_empty();
        let status = match track {
            true => self.status | SERVER_SESSION_STATE_CHANGED,
            false => self.status & !SERVER_SESSION_STATE_CHANGED,
        };
        out.put_u16_le(status);
        out.put_u16_le(self.warnings);
        if caps.contains(CLIENT_SESSION_TRACK) {
            // As the server does: the info string is omitted entirely when it is empty and no
            // state changed.
            if track || !self.info.is_empty() {
                put_lenenc_bytes(out, &self.info);
            }
            if track {
                let mut state = BytesMut::new();
                for change in &self.session_state_changes {
                    change.encode(&mut state);
                }
                put_lenenc_bytes(out, &state);
            }
        } else {
            out.put_slice(&self.info);
        }
    }

    /// Reads an OK payload (header 0x00 or 0xFE).
    pub fn decode(payload: &[u8], caps: Capabilities) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        match r.u8("OK header")? {
            OK_HEADER | EOF_HEADER => {}
            _ => return Err(ProtocolError::Malformed("OK header")),
        }
        let mut ok = Self {
            affected_rows: r.lenenc_int("OK affected rows")?,
            last_insert_id: r.lenenc_int("OK last insert id")?,
            ..Self::default()
        };
        if caps.contains(CLIENT_PROTOCOL_41) {
            ok.status = r.u16("OK status")?;
            ok.warnings = r.u16("OK warnings")?;
        }
        if !caps.contains(CLIENT_SESSION_TRACK) {
            ok.info = r.rest().to_vec();
            return Ok(ok);
        }
        if !r.is_empty() {
            ok.info = r.lenenc_bytes("OK info")?.to_vec();
        }
        if ok.status & SERVER_SESSION_STATE_CHANGED != 0 && !r.is_empty() {
            let mut state = Reader::new(r.lenenc_bytes("OK session state")?);
            while !state.is_empty() {
                let kind = state.u8("session-track type")?;
                let data = state.lenenc_bytes("session-track data")?;
                ok.session_state_changes
                    .push(SessionStateChange::decode(kind, data)?);
            }
        }
        Ok(ok)
    }
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    /// Five characters, e.g. `28000`.
    pub sql_state: [u8; 5],
    pub message: String,
}

impl ErrPacket {
    pub fn new(code: u16, sql_state: &[u8; 5], message: impl Into<String>) -> Self {
        Self {
            code,
            sql_state: *sql_state,
            message: message.into(),
        }
    }

    /// Appends the payload (with the `#` SQL state marker when `CLIENT_PROTOCOL_41`, which is
    /// also right before capabilities are known: every 4.1+ client accepts it).
    pub fn encode(&self, out: &mut BytesMut, caps: Capabilities) {
        out.put_u8(ERR_HEADER);
        out.put_u16_le(self.code);
        if caps.contains(CLIENT_PROTOCOL_41) {
            out.put_u8(b'#');
            out.put_slice(&self.sql_state);
        }
        out.put_slice(self.message.as_bytes());
    }

    /// Reads an ERR payload. The SQL state is optional on the wire (pre-4.1 peers and some
    /// early handshake errors); `HY000` stands in for it.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        if r.u8("ERR header")? != ERR_HEADER {
            return Err(ProtocolError::Malformed("ERR header"));
        }
        let code = r.u16("ERR code")?;
        let mut sql_state = *b"HY000";
        if r.peek() == Some(b'#') {
            r.skip(1, "ERR sql state")?;
            sql_state = r.array("ERR sql state")?;
        }
        let message = String::from_utf8_lossy(r.rest()).into_owned();
        Ok(Self {
            code,
            sql_state,
            message,
        })
    }

    /// A MariaDB progress report, not an error: it never ends a response.
    pub fn is_progress_report(payload: &[u8]) -> bool {
        payload.len() >= 3
            && payload[0] == ERR_HEADER
            && u16::from_le_bytes([payload[1], payload[2]]) == PROGRESS_REPORT_CODE
    }
}

/// An EOF packet (pre-`CLIENT_DEPRECATE_EOF` end of column definitions / rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EofPacket {
    pub warnings: u16,
    pub status: u16,
}

impl EofPacket {
    pub fn encode(&self, out: &mut BytesMut, caps: Capabilities) {
        out.put_u8(EOF_HEADER);
        if caps.contains(CLIENT_PROTOCOL_41) {
            out.put_u16_le(self.warnings);
            out.put_u16_le(self.status);
        }
    }

    pub fn decode(payload: &[u8], caps: Capabilities) -> Result<Self, ProtocolError> {
        if !is_eof(payload, caps.without(CLIENT_DEPRECATE_EOF)) {
            return Err(ProtocolError::Malformed("EOF packet"));
        }
        let mut r = Reader::new(&payload[1..]);
        if !caps.contains(CLIENT_PROTOCOL_41) {
            return Ok(Self::default());
        }
        Ok(Self {
            warnings: r.u16("EOF warnings")?,
            status: r.u16("EOF status")?,
        })
    }
}

/// An ERR packet.
pub fn is_err(payload: &[u8]) -> bool {
    payload.first() == Some(&ERR_HEADER)
}

/// An old-style EOF packet: 0xFE with a payload under 9 bytes, and only when the session did
/// not negotiate `CLIENT_DEPRECATE_EOF` (then 0xFE starts an OK instead).
pub fn is_eof(payload: &[u8], caps: Capabilities) -> bool {
    !caps.contains(CLIENT_DEPRECATE_EOF)
        && payload.first() == Some(&EOF_HEADER)
        && payload.len() < 9
}

/// An OK packet: 0x00 and long enough, or 0xFE under `CLIENT_DEPRECATE_EOF` (a 0xFE payload of
/// [`MAX_CHUNK`] bytes is the first fragment of a huge row instead).
pub fn is_ok(payload: &[u8], caps: Capabilities) -> bool {
    match payload.first() {
        Some(&OK_HEADER) => payload.len() >= 7,
        Some(&EOF_HEADER) => caps.contains(CLIENT_DEPRECATE_EOF) && payload.len() < MAX_CHUNK,
        _ => false,
    }
}

/// A packet that ends a result set (or a column-definition list) in this session's framing.
pub fn is_result_terminator(payload: &[u8], caps: Capabilities) -> bool {
    payload.first() == Some(&EOF_HEADER)
        && payload.len() < packet::MAX_CHUNK
        && (caps.contains(CLIENT_DEPRECATE_EOF) || payload.len() < 9)
}

#[cfg(test)]
mod tests;
