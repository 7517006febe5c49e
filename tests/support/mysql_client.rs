//! A minimal blocking MySQL client for tests that need to hold a session open while they look
//! at it from elsewhere (the admin socket, another client's `KILL`). Built on the proxy's own
//! protocol module; the drivers' behaviour is tested with the real drivers (tests/e2e).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use tidepool::mysql::protocol::Capabilities;
use tidepool::mysql::protocol::auth::native_scramble;
use tidepool::mysql::protocol::capabilities::*;
use tidepool::mysql::protocol::command::{
    COM_QUERY, COM_STMT_EXECUTE, COM_STMT_PREPARE, write_query,
};
use tidepool::mysql::protocol::handshake::{HandshakeResponse41, HandshakeV10};
use tidepool::mysql::protocol::packet::{Reader, decode_packet, write_packet};
use tidepool::mysql::protocol::response::ErrPacket;
use tidepool::mysql::protocol::tracker::{PacketRole, ResponseTracker, TrackerEvent};

const CAPS: u64 = CLIENT_LONG_PASSWORD
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_DEPRECATE_EOF;

/// A server error: (code, message).
pub type MyErr = (u16, String);

pub struct MysqlClient {
    stream: TcpStream,
    buf: BytesMut,
    caps: Capabilities,
    /// The connection id from the handshake (the proxy's own id for this client).
    pub connection_id: u32,
}

impl MysqlClient {
    pub fn connect(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<MysqlClient, MyErr> {
        let stream = TcpStream::connect(addr).map_err(|e| (0, e.to_string()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = MysqlClient {
            stream,
            buf: BytesMut::new(),
            caps: Capabilities::from_parts(CAPS as u32, 0),
            connection_id: 0,
        };
        let (_, greeting) = c.packet()?;
        if greeting.first() == Some(&0xFF) {
            return Err(err(&greeting));
        }
        let hello = HandshakeV10::decode(&greeting).map_err(|e| (0, e.to_string()))?;
        c.connection_id = hello.connection_id;
        let mut payload = BytesMut::new();
        HandshakeResponse41 {
            capabilities: c.caps,
            max_packet: 1 << 24,
            charset: 45,
            username: user.into(),
            auth_response: native_scramble(password.as_bytes(), &hello.nonce).to_vec(),
            database: db.map(String::from),
            auth_plugin: Some("mysql_native_password".into()),
            connect_attrs: Vec::new(),
        }
        .encode(&mut payload)
        .unwrap();
        c.send(1, &payload);
        let (_, reply) = c.packet()?;
        match reply.first() {
            Some(0x00) => Ok(c),
            _ => Err(err(&reply)),
        }
    }

    /// Runs a statement; the text rows of its (last) result set.
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, MyErr> {
        let mut payload = BytesMut::new();
        write_query(&mut payload, sql.as_bytes(), self.caps);
        self.send(0, &payload);
        let mut tracker = ResponseTracker::new(COM_QUERY, self.caps);
        let (mut rows, mut in_rows) = (Vec::new(), false);
        loop {
            let (_, p) = self.packet()?;
            match tracker.role_of(p.first().copied().unwrap_or(0), p.len()) {
                PacketRole::LastDefinition => {
                    in_rows = true;
                    rows.clear();
                }
                PacketRole::Other if in_rows => rows.push(row(&p)),
                PacketRole::ResultTerminator => in_rows = false,
                _ => {}
            }
            match tracker.feed(&p).map_err(|e| (0, e.to_string()))? {
                TrackerEvent::Done(end) => {
                    return match end.error {
                        Some(e) => Err((e.code, e.message)),
                        None => Ok(rows),
                    };
                }
                TrackerEvent::Continue => {}
                other => return Err((0, format!("unexpected {other:?}"))),
            }
        }
    }

    /// `COM_STMT_PREPARE`: the statement id the server (here: the proxy) gave it.
    pub fn prepare(&mut self, sql: &str) -> Result<u32, MyErr> {
        let mut payload = BytesMut::new();
        tidepool::mysql::protocol::command::write_stmt_prepare(&mut payload, sql.as_bytes());
        self.send(0, &payload);
        let mut tracker = ResponseTracker::new(COM_STMT_PREPARE, self.caps);
        loop {
            let (_, p) = self.packet()?;
            if let TrackerEvent::Done(end) = tracker.feed(&p).map_err(|e| (0, e.to_string()))? {
                return match (end.error, end.prepared) {
                    (Some(e), _) => Err((e.code, e.message)),
                    (None, Some(ok)) => Ok(ok.stmt_id),
                    (None, None) => Err((0, "no statement id".into())),
                };
            }
        }
    }

    /// `COM_STMT_EXECUTE` of a one-parameter statement with a BIGINT, sending the parameter's
    /// type only if `send_types` (as the C API does after the first execute). Returns the
    /// first column of the first row, read as a BIGINT.
    pub fn execute_i64(&mut self, stmt: u32, value: i64, send_types: bool) -> Result<i64, MyErr> {
        let mut payload = BytesMut::new();
        payload.extend_from_slice(&[COM_STMT_EXECUTE]);
        payload.extend_from_slice(&stmt.to_le_bytes());
        payload.extend_from_slice(&[0, 1, 0, 0, 0]); // no cursor, one iteration
        payload.extend_from_slice(&[0]); // null bitmap
        if send_types {
            payload.extend_from_slice(&[1, 0x08, 0x00]); // bound: MYSQL_TYPE_LONGLONG
        } else {
            payload.extend_from_slice(&[0]);
        }
        payload.extend_from_slice(&value.to_le_bytes());
        self.send(0, &payload);
        let mut tracker = ResponseTracker::new(COM_STMT_EXECUTE, self.caps);
        let (mut in_rows, mut first) = (false, None);
        loop {
            let (_, p) = self.packet()?;
            match tracker.role_of(p.first().copied().unwrap_or(0), p.len()) {
                PacketRole::LastDefinition => in_rows = true,
                // A binary row: 0x00, a null bitmap of (1 column + 7 + 2) / 8 = 1 byte, the value.
                PacketRole::Other if in_rows && first.is_none() && p.len() >= 10 => {
                    first = Some(i64::from_le_bytes(p[2..10].try_into().unwrap()));
                }
                _ => {}
            }
            if let TrackerEvent::Done(end) = tracker.feed(&p).map_err(|e| (0, e.to_string()))? {
                return match end.error {
                    Some(e) => Err((e.code, e.message)),
                    None => first.ok_or((0, "no row".into())),
                };
            }
        }
    }

    /// The first column of the first row.
    pub fn value(&mut self, sql: &str) -> Result<Option<String>, MyErr> {
        Ok(self
            .query(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// Waits for the next packet (e.g. the error a killed session is sent).
    pub fn next_error(&mut self) -> Result<MyErr, String> {
        match self.packet() {
            Ok((_, p)) if p.first() == Some(&0xFF) => Ok(err(&p)),
            Ok((_, p)) => Err(format!("expected an error packet, got {p:02x?}")),
            Err(e) => Err(e.1),
        }
    }

    fn send(&mut self, seq: u8, payload: &[u8]) {
        let mut out = BytesMut::new();
        write_packet(&mut out, seq, payload);
        self.stream.write_all(&out).unwrap();
    }

    fn packet(&mut self) -> Result<(u8, Vec<u8>), MyErr> {
        loop {
            if let Some(frame) =
                decode_packet(&self.buf, 1 << 24).map_err(|e| (0, e.to_string()))?
            {
                let wire = self.buf.split_to(frame.wire_len());
                return Ok((frame.seq, wire[frame.payload].to_vec()));
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err((2013, "connection closed".into())),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err((2013, e.to_string())),
            }
        }
    }
}

fn err(payload: &[u8]) -> MyErr {
    match ErrPacket::decode(payload) {
        Ok(e) => (e.code, e.message),
        Err(e) => (0, e.to_string()),
    }
}

fn row(payload: &[u8]) -> Vec<Option<String>> {
    let mut r = Reader::new(payload);
    let mut out = Vec::new();
    while !r.is_empty() {
        if r.peek() == Some(0xFB) {
            let _ = r.u8("null");
            out.push(None);
        } else {
            match r.lenenc_bytes("column") {
                Ok(b) => out.push(Some(String::from_utf8_lossy(b).into_owned())),
                Err(_) => break,
            }
        }
    }
    out
}
