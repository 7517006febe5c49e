//! The owned decoder, for the few replies the proxy reads itself.

use bytes::Bytes;

use super::{
    BLOB_CRLF, Class, INCOMPLETE, Limits, Line, RespError, aggregate_len, blob_end, check_line,
    check_verbatim, classify, find_line, parse_int, parse_len,
};

/// An owned reply, for the few replies the proxy reads itself; not used on the data path.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(Bytes),
    /// Simple (`-`) or blob (`!`) error.
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    /// `_`, or RESP2's `$-1` / `*-1`.
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Push(Vec<Value>),
    /// The double's text as sent.
    Double(Bytes),
    Boolean(bool),
    BigNumber(Bytes),
    /// The whole payload including its format prefix, e.g. `txt:hello`.
    Verbatim(Bytes),
}

impl Value {
    /// The bytes of a string-like value; for `Verbatim`, without the format prefix.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b)
            | Value::Error(b)
            | Value::Bulk(b)
            | Value::Double(b)
            | Value::BigNumber(b) => Some(b),
            Value::Verbatim(b) => b.get(4..),
            _ => None,
        }
    }

    /// An integer, or a simple/bulk string holding a decimal `i64` (CONFIG GET answers numbers
    /// as bulk strings).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Integer(n) => Some(*n),
            Value::Simple(b) | Value::Bulk(b) | Value::BigNumber(b) => parse_int(b).ok(),
            _ => None,
        }
    }
}

/// Decodes exactly one complete frame, such as the bytes a `Scanner` delimited. Attributes are
/// skipped. Incomplete input and trailing bytes are errors.
pub fn decode_value(frame: &[u8], limits: Limits) -> Result<Value, RespError> {
    let mut decoder = Decoder {
        buf: frame,
        pos: 0,
        limits,
    };
    let value = decoder.value(0)?;
    if decoder.pos != frame.len() {
        return Err(RespError::Malformed("trailing bytes after frame"));
    }
    Ok(value)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn value(&mut self, depth: usize) -> Result<Value, RespError> {
        loop {
            let ty = *self.buf.get(self.pos).ok_or(INCOMPLETE)?;
            let class = classify(ty)?;
            let start = self.pos + 1;
            let end = match find_line(self.buf, start, start, ty, &self.limits)? {
                Line::Found(end) => end,
                Line::Partial(_) => return Err(INCOMPLETE),
            };
            let line = &self.buf[start..end];
            self.pos = end + 2;
            let text = || Bytes::copy_from_slice(line);
            return Ok(match class {
                Class::Line => {
                    check_line(ty, line)?;
                    match ty {
                        b'+' => Value::Simple(text()),
                        b'-' => Value::Error(text()),
                        b':' => Value::Integer(parse_int(line)?),
                        b'_' => Value::Null,
                        b'#' => Value::Boolean(line == b"t"),
                        b',' => Value::Double(text()),
                        _ => Value::BigNumber(text()),
                    }
                }
                Class::Blob => match parse_len(line, ty == b'$')? {
                    None => Value::Null,
                    Some(len) => {
                        let payload = self.blob(len)?;
                        match ty {
                            b'$' => Value::Bulk(payload),
                            b'!' => Value::Error(payload),
                            _ => {
                                check_verbatim(&payload)?;
                                Value::Verbatim(payload)
                            }
                        }
                    }
                },
                Class::Aggregate => match aggregate_len(ty, line, depth, &self.limits)? {
                    None => Value::Null,
                    Some(n) if ty == b'|' => {
                        for _ in 0..n {
                            self.value(depth + 1)?;
                        }
                        continue;
                    }
                    Some(n) => self.aggregate(ty, n, depth + 1)?,
                },
            });
        }
    }

    fn blob(&mut self, len: u64) -> Result<Bytes, RespError> {
        let end = blob_end(self.pos, len, &self.limits)?;
        let tail = self.buf.get(end..end + 2).ok_or(INCOMPLETE)?;
        if tail != b"\r\n" {
            return Err(BLOB_CRLF);
        }
        let payload = Bytes::copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end + 2;
        Ok(payload)
    }

    fn aggregate(&mut self, ty: u8, n: u64, depth: usize) -> Result<Value, RespError> {
        // Every element takes at least three bytes, which bounds what a lying header can reserve.
        let cap = (n as usize).min((self.buf.len() - self.pos) / 3);
        if ty == b'%' {
            let mut pairs = Vec::with_capacity(cap / 2);
            for _ in 0..n / 2 {
                pairs.push((self.value(depth)?, self.value(depth)?));
            }
            return Ok(Value::Map(pairs));
        }
        let mut items = Vec::with_capacity(cap);
        for _ in 0..n {
            items.push(self.value(depth)?);
        }
        Ok(match ty {
            b'~' => Value::Set(items),
            b'>' => Value::Push(items),
            _ => Value::Array(items),
        })
    }
}
