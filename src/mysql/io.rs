//! Reading and writing MySQL packets on a socket: the only place in the engine that frames
//! bytes. A packet is at most 16 MiB − 1 bytes of payload, so a reader holds at most one
//! physical packet beyond what it has handed out; results are relayed packet by packet, never
//! buffered whole.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::protocol::ProtocolError;
use super::protocol::packet::{HEADER_LEN, MAX_CHUNK, PacketHeader, decode_packet, write_packet};

const READ_CHUNK: usize = 16 * 1024;
/// What a read starts with when nothing is buffered and the last read did not fill its buffer:
/// an idle client (most of them, most of the time) then owns this little, not 16 KiB. A typical
/// statement, or a small result, fits.
const IDLE_READ: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Protocol(#[from] ProtocolError),
}

/// One physical packet.
#[derive(Debug, Clone)]
pub struct Packet {
    pub seq: u8,
    pub payload: Bytes,
}

impl Packet {
    /// The next packet continues this one (its payload is exactly 16 MiB − 1 bytes).
    pub fn is_continued(&self) -> bool {
        self.payload.len() == MAX_CHUNK
    }
}

pub struct PacketReader<R> {
    r: R,
    buf: BytesMut,
    max_payload: usize,
    /// The last read filled all the room it had: more is probably on its way (a result set),
    /// so the next read gets a full chunk even if every packet so far was handed out.
    streaming: bool,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(r: R, max_payload: usize) -> Self {
        PacketReader {
            r,
            buf: BytesMut::new(),
            max_payload: max_payload.min(MAX_CHUNK),
            streaming: false,
        }
    }

    /// A reader that first hands out bytes already read from the socket.
    pub fn with_buffered(r: R, max_payload: usize, buf: BytesMut) -> Self {
        PacketReader {
            buf,
            ..PacketReader::new(r, max_payload)
        }
    }

    /// Reads the next physical packet.
    pub async fn read(&mut self) -> Result<Packet, IoError> {
        loop {
            if let Some(frame) = decode_packet(&self.buf, self.max_payload)? {
                let mut wire = self.buf.split_to(frame.wire_len());
                let payload = wire.split_off(HEADER_LEN).freeze();
                if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
                    // An idle connection should not keep a large buffer.
                    self.buf = BytesMut::new();
                }
                return Ok(Packet {
                    seq: frame.seq,
                    payload,
                });
            }
            let want = if self.buf.is_empty() && !self.streaming {
                IDLE_READ
            } else {
                READ_CHUNK
            };
            if self.buf.capacity() - self.buf.len() < want / 4 {
                self.buf.reserve(want);
            }
            let room = self.buf.capacity() - self.buf.len();
            let n = self.r.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(IoError::Closed);
            }
            self.streaming = n == room;
        }
    }

    /// The socket under the reader.
    pub fn get_ref(&self) -> &R {
        &self.r
    }

    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload.min(MAX_CHUNK);
    }

    /// Bytes read but not yet handed out (a client must not pipeline during the handshake).
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// Collects packets for one peer and writes them out in as few syscalls as possible.
pub struct PacketWriter<W> {
    w: W,
    out: BytesMut,
    /// The sequence id of the next packet.
    pub seq: u8,
    /// Bytes written so far (for the operator's counters).
    pub written: u64,
}

/// Above this, buffered packets are written out before more are added.
const FLUSH_AT: usize = 64 * 1024;

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    pub fn new(w: W) -> Self {
        PacketWriter {
            w,
            out: BytesMut::new(),
            seq: 0,
            written: 0,
        }
    }

    /// Queues one packet with the next sequence id (splitting payloads of 16 MiB − 1 or more).
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), IoError> {
        if self.out.len() + payload.len() > FLUSH_AT {
            self.flush().await?;
        }
        self.seq = write_packet(&mut self.out, self.seq, payload);
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues one physical packet exactly as received from the other side (relaying): a
    /// payload of 16 MiB − 1 is a fragment whose continuation follows, so unlike `send` it gets
    /// no empty trailer here.
    pub async fn relay(&mut self, payload: &[u8]) -> Result<(), IoError> {
        debug_assert!(payload.len() <= MAX_CHUNK);
        if self.out.len() + payload.len() > FLUSH_AT {
            self.flush().await?;
        }
        let header = PacketHeader {
            len: payload.len(),
            seq: self.seq,
        };
        self.out.extend_from_slice(&header.encode());
        self.out.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a payload built by `build`.
    pub async fn send_with(&mut self, build: impl FnOnce(&mut BytesMut)) -> Result<(), IoError> {
        let mut payload = BytesMut::new();
        build(&mut payload);
        self.send(&payload).await
    }

    pub async fn flush(&mut self) -> Result<(), IoError> {
        if !self.out.is_empty() {
            self.w.write_all(&self.out).await?;
            self.written += self.out.len() as u64;
            self.out.clear();
            if self.out.capacity() > 4 * FLUSH_AT {
                self.out = BytesMut::new();
            }
        }
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.w.shutdown().await;
    }
}
