//! Relaying one upstream response to a client, packet by packet, in the framing that client
//! negotiated. Upstream connections always use `CLIENT_DEPRECATE_EOF` and
//! `CLIENT_SESSION_TRACK`; for a client without them (PyMySQL has neither) the relay inserts
//! the EOF after column definitions, turns the OK(0xFE) that ends rows into an EOF, and strips
//! session-state info from OK packets. Sequence ids are the client's own.

use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{IoError, PacketReader, PacketWriter};
use super::protocol::ProtocolError;
use super::protocol::capabilities::{
    CLIENT_DEPRECATE_EOF, CLIENT_LOCAL_FILES, CLIENT_SESSION_TRACK, Capabilities,
};
use super::protocol::command::COM_STMT_PREPARE;
use super::protocol::response::{EofPacket, OkPacket};
use super::protocol::tracker::{
    InfileRelay, PacketRole, ResponseEnd, ResponseTracker, TrackerEvent,
};
use super::upstream::MysqlConn;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The client went away or sent garbage; the upstream's response was not read to its end.
    #[error("client: {0}")]
    Client(IoError),
    /// The upstream failed mid-response. `relayed`: part of the response already reached the
    /// client, so it cannot be given a clean error in its place.
    #[error("upstream: {cause}")]
    Upstream { cause: String, relayed: bool },
}

/// The client's end of a relay.
pub struct Client<'a, R, W> {
    pub reader: &'a mut PacketReader<R>,
    pub writer: &'a mut PacketWriter<W>,
    pub caps: Capabilities,
    /// Status flags for EOFs the relay has to make up (the last status the client saw).
    pub status: u16,
    /// For `COM_STMT_PREPARE`: the statement id the client is to know (the proxy's own, not
    /// the upstream connection's).
    pub stmt_id: Option<u32>,
}

/// A response relayed to its end.
#[derive(Debug)]
pub struct Relayed {
    pub end: ResponseEnd,
    /// Rows of the last result set, `None` if the response had no result set (what
    /// `FOUND_ROWS()` and `ROW_COUNT()` report next).
    pub rows: Option<u64>,
}

pub async fn relay<R, W>(
    up: &mut MysqlConn,
    client: &mut Client<'_, R, W>,
    command: u8,
) -> Result<Relayed, RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut tracker = ResponseTracker::new(command, up.caps);
    let mut relayed = false;
    let mut rows: Option<u64> = None;
    let mut in_rows = false;
    loop {
        let packet = match up.reader.read().await {
            Ok(p) => p,
            Err(e) => {
                let cause = up.io(e).to_string();
                return Err(RelayError::Upstream { cause, relayed });
            }
        };
        let payload = &packet.payload;
        let role = tracker.role_of(payload.first().copied().unwrap_or(0), payload.len());
        match role {
            PacketRole::LastDefinition => {
                in_rows = true;
                rows = Some(0);
            }
            PacketRole::ResultTerminator => in_rows = false,
            PacketRole::Other if in_rows && !packet.is_continued() => rows = rows.map(|n| n + 1),
            _ => {}
        }
        let event = tracker
            .feed(payload)
            .map_err(|e| upstream_protocol(up, e, relayed))?;
        let refused_infile =
            event == TrackerEvent::LocalInfile && !client.caps.contains(CLIENT_LOCAL_FILES);
        let renamed;
        let payload = match client.stmt_id {
            // The statement-prepare OK: [0x00][statement id, 4 bytes LE]...
            Some(id)
                if !relayed
                    && command == COM_STMT_PREPARE
                    && payload.first() == Some(&0)
                    && payload.len() >= 5 =>
            {
                let mut p = payload.to_vec();
                p[1..5].copy_from_slice(&id.to_le_bytes());
                renamed = p;
                &renamed[..]
            }
            _ => &payload[..],
        };
        if !refused_infile {
            forward(up, client, role, payload)
                .await
                .map_err(|e| translate_err(up, e, relayed))?;
            relayed = true;
        }
        match event {
            TrackerEvent::Continue => {}
            TrackerEvent::Done(end) => {
                client.writer.flush().await.map_err(RelayError::Client)?;
                return Ok(Relayed { end, rows });
            }
            TrackerEvent::LocalInfile => local_infile(up, client, packet.seq).await?,
            TrackerEvent::NeedsAuthExchange => {
                up.broken = true;
                return Err(RelayError::Upstream {
                    cause: "an authentication exchange cannot be relayed".into(),
                    relayed,
                });
            }
        }
    }
}

/// Writes one upstream packet to the client in the client's framing.
async fn forward<R, W>(
    up: &MysqlConn,
    client: &mut Client<'_, R, W>,
    role: PacketRole,
    payload: &[u8],
) -> Result<(), Translate>
where
    W: AsyncWrite + Unpin,
{
    let caps = client.caps;
    let w = &mut client.writer;
    match role {
        PacketRole::LastDefinition => {
            w.relay(payload).await?;
            if !caps.contains(CLIENT_DEPRECATE_EOF) {
                let eof = EofPacket {
                    warnings: 0,
                    status: client.status,
                };
                w.send_with(|o| eof.encode(o, caps)).await?;
            }
        }
        PacketRole::ResultTerminator => {
            let ok = OkPacket::decode(payload, up.caps)?;
            client.status = ok.status;
            if !caps.contains(CLIENT_DEPRECATE_EOF) {
                let eof = EofPacket {
                    warnings: ok.warnings,
                    status: ok.status,
                };
                w.send_with(|o| eof.encode(o, caps)).await?;
            } else if caps.contains(CLIENT_SESSION_TRACK) {
                w.relay(payload).await?;
            } else {
                w.send_with(|o| ok.encode_as_eof(o, caps)).await?;
            }
        }
        PacketRole::Ok => {
            let ok = OkPacket::decode(payload, up.caps)?;
            client.status = ok.status;
            if caps.contains(CLIENT_SESSION_TRACK) {
                w.relay(payload).await?;
            } else {
                w.send_with(|o| ok.encode(o, caps)).await?;
            }
        }
        PacketRole::Other => w.relay(payload).await?,
    }
    Ok(())
}

/// The upstream asked for a file: the client sends it (or, if it never agreed to LOCAL INFILE,
/// the proxy answers "no file" for it).
async fn local_infile<R, W>(
    up: &mut MysqlConn,
    client: &mut Client<'_, R, W>,
    request_seq: u8,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    up.writer.seq = request_seq.wrapping_add(1);
    if !client.caps.contains(CLIENT_LOCAL_FILES) {
        // A client that never agreed to LOCAL INFILE is not asked; the upstream is told there
        // is no file, and its answer ends the statement.
        return up.send(&[]).await.map_err(|e| RelayError::Upstream {
            cause: e.to_string(),
            relayed: true,
        });
    }
    client.writer.flush().await.map_err(RelayError::Client)?;
    let mut ends = InfileRelay::default();
    loop {
        let packet = client.reader.read().await.map_err(RelayError::Client)?;
        client.writer.seq = packet.seq.wrapping_add(1);
        let last = ends.feed(packet.payload.len());
        up.writer
            .relay(&packet.payload)
            .await
            .map_err(|e| RelayError::Upstream {
                cause: up.io(e).to_string(),
                relayed: true,
            })?;
        if last {
            break;
        }
    }
    up.writer.flush().await.map_err(|e| RelayError::Upstream {
        cause: up.io(e).to_string(),
        relayed: true,
    })
}

/// A failure while translating one packet: decoding the upstream's, or writing the client's.
#[derive(Debug)]
enum Translate {
    Protocol(ProtocolError),
    Client(IoError),
}

impl From<ProtocolError> for Translate {
    fn from(e: ProtocolError) -> Self {
        Translate::Protocol(e)
    }
}

impl From<IoError> for Translate {
    fn from(e: IoError) -> Self {
        Translate::Client(e)
    }
}

fn translate_err(up: &mut MysqlConn, e: Translate, relayed: bool) -> RelayError {
    match e {
        Translate::Protocol(e) => upstream_protocol(up, e, relayed),
        Translate::Client(e) => {
            up.broken = true;
            RelayError::Client(e)
        }
    }
}

fn upstream_protocol(up: &mut MysqlConn, e: ProtocolError, relayed: bool) -> RelayError {
    up.broken = true;
    RelayError::Upstream {
        cause: format!("malformed response: {e}"),
        relayed,
    }
}
