//! Packet framing (4-byte header: 3-byte little-endian payload length + sequence id) and the
//! primitive field codecs every other module uses: fixed ints, length-encoded ints and strings,
//! NUL-terminated strings — read through a bounds-checked [`Reader`].

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use super::ProtocolError;

/// Bytes in a packet header.
pub const HEADER_LEN: usize = 4;
/// Largest payload of one physical packet. A payload of exactly this length means "the logical
/// packet continues in the next physical packet" (a payload that is an exact multiple of it ends
/// with an empty packet).
pub const MAX_CHUNK: usize = 0xFF_FFFF;

/// The 4-byte header in front of every physical packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    pub len: usize,
    pub seq: u8,
}

impl PacketHeader {
    /// Reads a header from the start of `buf`; `None` if fewer than 4 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let h = buf.get(..HEADER_LEN)?;
        Some(Self {
            len: usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16,
            seq: h[3],
        })
    }

    /// The header bytes. `len` must be at most [`MAX_CHUNK`] (only the low 24 bits are written).
    pub fn encode(self) -> [u8; 4] {
        debug_assert!(self.len <= MAX_CHUNK);
        let l = self.len as u32;
        [l as u8, (l >> 8) as u8, (l >> 16) as u8, self.seq]
    }

    /// True when the next physical packet continues this one's payload.
    pub fn is_continued(self) -> bool {
        self.len == MAX_CHUNK
    }
}

/// One complete physical packet found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u8,
    /// Where the payload sits in the buffer that was decoded.
    pub payload: Range<usize>,
}

impl Frame {
    /// Bytes the whole packet (header + payload) occupies at the start of the buffer.
    pub fn wire_len(&self) -> usize {
        self.payload.end
    }
}

/// Finds the physical packet at the start of `buf`: `Ok(None)` until header and payload are
/// complete; an error, before anything is buffered, if the declared payload exceeds `max_payload`.
pub fn decode_packet(buf: &[u8], max_payload: usize) -> Result<Option<Frame>, ProtocolError> {
    let Some(header) = PacketHeader::parse(buf) else {
        return Ok(None);
    };
    if header.len > max_payload {
        return Err(ProtocolError::TooLarge {
            what: "packet",
            len: header.len,
            max: max_payload,
        });
    }
    let end = HEADER_LEN + header.len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame {
        seq: header.seq,
        payload: HEADER_LEN..end,
    }))
}

/// Appends `payload` as one logical packet starting at sequence id `seq`, split into
/// [`MAX_CHUNK`]-sized physical packets (plus an empty trailer when the length is an exact
/// multiple). Returns the next sequence id.
pub fn write_packet(out: &mut BytesMut, mut seq: u8, payload: &[u8]) -> u8 {
    out.reserve(payload.len() + HEADER_LEN * (1 + payload.len() / MAX_CHUNK));
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_CHUNK);
        out.put_slice(&PacketHeader { len: n, seq }.encode());
        out.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_CHUNK {
            return seq;
        }
    }
}

/// Builds one packet in place: reserves the header, lets the caller append the payload to
/// [`PacketWriter::buf`], then patches the header in [`PacketWriter::finish`] — no copy for
/// payloads under 16 MiB − 1 (larger ones are re-split, which copies once).
pub struct PacketWriter<'a> {
    out: &'a mut BytesMut,
    start: usize,
    seq: u8,
}

impl<'a> PacketWriter<'a> {
    pub fn new(out: &'a mut BytesMut, seq: u8) -> Self {
        let start = out.len();
        out.put_slice(&[0; HEADER_LEN]);
        Self { out, start, seq }
    }

    /// The output buffer; append payload bytes only (the header is already in it).
    pub fn buf(&mut self) -> &mut BytesMut {
        self.out
    }

    /// Payload bytes appended so far.
    pub fn payload_len(&self) -> usize {
        self.out.len() - self.start - HEADER_LEN
    }

    /// Writes the header (splitting an oversized payload) and returns the next sequence id.
    pub fn finish(self) -> u8 {
        let len = self.payload_len();
        if len < MAX_CHUNK {
            let header = PacketHeader { len, seq: self.seq }.encode();
            self.out[self.start..self.start + HEADER_LEN].copy_from_slice(&header);
            return self.seq.wrapping_add(1);
        }
        let payload = self.out.split_off(self.start + HEADER_LEN);
        self.out.truncate(self.start);
        write_packet(self.out, self.seq, &payload)
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(out: &mut BytesMut, v: u64) {
    match v {
        0..=250 => out.put_u8(v as u8),
        251..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_u16_le(v as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            out.put_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(v);
        }
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_bytes(out: &mut BytesMut, s: &[u8]) {
    put_lenenc_int(out, s.len() as u64);
    out.put_slice(s);
}

/// Appends a NUL-terminated string (`s` must not contain NUL; the caller's contract).
pub fn put_nul_bytes(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

/// Bytes a length-encoded integer occupies.
pub fn lenenc_int_len(v: u64) -> usize {
    match v {
        0..=250 => 1,
        251..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 9,
    }
}

/// A bounds-checked cursor over a payload. Every read names the field it reads so that a
/// truncated packet reports `malformed <field>`.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next byte without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// Everything not yet read (`string<EOF>`).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        if n > self.buf.len() {
            return Err(ProtocolError::Malformed(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), ProtocolError> {
        self.bytes(n, what).map(drop)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ProtocolError> {
        let b = self.bytes(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u24(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        let [a, b, c] = self.array(what)?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-encoded integer. 0xFB (NULL in rows) and 0xFF (an ERR header) are not integers.
    pub fn lenenc_int(&mut self, what: &'static str) -> Result<u64, ProtocolError> {
        match self.u8(what)? {
            v @ 0..=250 => Ok(u64::from(v)),
            0xFC => self.u16(what).map(u64::from),
            0xFD => self.u24(what).map(u64::from),
            0xFE => self.u64(what),
            _ => Err(ProtocolError::Malformed(what)),
        }
    }

    /// A length-encoded string; its declared length is checked against what is left.
    pub fn lenenc_bytes(&mut self, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        let len = self.lenenc_int(what)?;
        let len = usize::try_from(len).map_err(|_| ProtocolError::Malformed(what))?;
        self.bytes(len, what)
    }

    /// A NUL-terminated string (the NUL is consumed, not returned).
    pub fn nul_bytes(&mut self, what: &'static str) -> Result<&'a [u8], ProtocolError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(ProtocolError::Malformed(what))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A NUL-terminated string, or the rest of the payload if it has no NUL (servers and
    /// clients disagree on whether some trailing strings are terminated).
    pub fn nul_or_rest(&mut self) -> &'a [u8] {
        match self.buf.iter().position(|&b| b == 0) {
            Some(end) => {
                let s = &self.buf[..end];
                self.buf = &self.buf[end + 1..];
                s
            }
            None => self.rest(),
        }
    }
}

/// Strict UTF-8 for names the proxy compares or replays (user, schema, plugin).
pub(crate) fn utf8(b: &[u8], what: &'static str) -> Result<String, ProtocolError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| ProtocolError::Malformed(what))
}

#[cfg(test)]
mod tests;
