//! Sans-IO RESP2/RESP3 codec: delimits reply frames, parses client commands (RESP arrays or
//! inline lines), encodes into a `BytesMut`, and decodes the few replies the proxy reads itself.
//!
//! `Scanner` and `CommandParser` are incremental: they keep their place across calls, so a frame
//! arriving over many reads is examined once in total and blob payloads are skipped by length.
//! Every declared length is checked against `Limits` as soon as its header is read — before any
//! allocation and before waiting for the payload.
//!
//! Streamed RESP3 types (`$?`, `*?`, `;`, `.`) are rejected: Redis never sends them.
//!
//! The line and length rules that the scanner, the command parser and the decoder share live
//! here; each of those, and the encoders, is a submodule.

mod command;
mod encode;
mod scanner;
mod value;

use std::fmt;

pub use command::{Args, Command, CommandParser};
pub use encode::{
    encode_array_header, encode_bulk, encode_command, encode_error, encode_integer,
    encode_map_header, encode_null, encode_simple,
};
pub use scanner::{FrameInfo, Scanner};
pub use value::{Value, decode_value};

#[cfg(test)]
mod tests;

/// Limits checked before any allocation or skip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub max_array_len: usize,
    pub max_depth: usize,
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Bulk and inline match redis-server's own `proto-max-bulk-len` and PROTO_INLINE_MAX_SIZE.
        Limits {
            max_bulk_len: 512 << 20,
            max_array_len: 16 << 20,
            max_depth: 64,
            max_inline_len: 64 << 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    Malformed(&'static str),
    /// For lines without a declared length (simple strings, inline commands), `len` is
    /// `max + 1`: all that is known is that the limit was passed.
    TooLarge {
        what: &'static str,
        len: u64,
        max: usize,
    },
    TooDeep {
        max: usize,
    },
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Malformed(why) => write!(f, "malformed RESP: {why}"),
            RespError::TooLarge { what, len, max } => {
                write!(f, "{what} length {len} exceeds limit {max}")
            }
            RespError::TooDeep { max } => write!(f, "RESP nesting deeper than {max} levels"),
        }
    }
}

impl std::error::Error for RespError {}

const INVALID_LENGTH: RespError = RespError::Malformed("invalid length");
const STREAMED: RespError = RespError::Malformed("streamed RESP3 types are not supported");
const UNBALANCED: RespError = RespError::Malformed("unbalanced quotes in inline command");
const BLOB_CRLF: RespError = RespError::Malformed("expected '\\r\\n' after bulk string");
const INCOMPLETE: RespError = RespError::Malformed("incomplete frame");

/// A length or integer line never needs more than 20 characters ("-9223372036854775808").
const MAX_NUMBER_LINE: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The value is the line itself.
    Line,
    /// The line is a length; that many payload bytes and a CRLF follow.
    Blob,
    /// The line is an element count.
    Aggregate,
}

fn classify(ty: u8) -> Result<Class, RespError> {
    match ty {
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Class::Line),
        b'$' | b'!' | b'=' => Ok(Class::Blob),
        b'*' | b'%' | b'~' | b'>' | b'|' => Ok(Class::Aggregate),
        b';' | b'.' => Err(STREAMED),
        _ => Err(RespError::Malformed("unknown type byte")),
    }
}

fn aggregate_name(ty: u8) -> &'static str {
    match ty {
        b'%' => "map",
        b'|' => "attribute",
        b'~' => "set",
        b'>' => "push",
        _ => "array",
    }
}

enum Line {
    /// Index of the `\r` that ends the line.
    Found(usize),
    /// Not terminated yet; searching may resume at this index.
    Partial(usize),
}

/// Finds the CRLF ending the line that starts at `start`, searching from `from`.
///
/// Only the first `max + 1` bytes of a line (its allowed length plus the `\r`) are examined, so the
/// outcome depends on the bytes, never on how they were split across reads.
fn find_line(
    buf: &[u8],
    start: usize,
    from: usize,
    ty: u8,
    limits: &Limits,
) -> Result<Line, RespError> {
    let max = match ty {
        b'+' | b'-' | b',' | b'(' => limits.max_bulk_len,
        _ => MAX_NUMBER_LINE,
    };
    let limit = start.saturating_add(max).saturating_add(1);
    let window_end = buf.len().min(limit);
    let from = from.max(start).min(window_end);
    let hit = buf[from..window_end]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n');
    match hit.map(|i| from + i) {
        Some(at) if buf[at] == b'\n' => {
            Err(RespError::Malformed("expected '\\r\\n', got a lone '\\n'"))
        }
        Some(at) => match buf.get(at + 1) {
            None => Ok(Line::Partial(at)),
            Some(b'\n') => Ok(Line::Found(at)),
            Some(_) => Err(RespError::Malformed("expected '\\n' after '\\r'")),
        },
        None if buf.len() < limit => Ok(Line::Partial(window_end)),
        None if max == MAX_NUMBER_LINE => Err(match ty {
            b'$' | b'!' | b'=' | b'*' | b'%' | b'~' | b'>' | b'|' => INVALID_LENGTH,
            _ => RespError::Malformed("line too long for its type"),
        }),
        None => Err(RespError::TooLarge {
            what: "simple string",
            len: max as u64 + 1,
            max,
        }),
    }
}

/// Parses a length header. `Ok(None)` is the RESP2 null `-1`, accepted only when `null_ok`.
fn parse_len(line: &[u8], null_ok: bool) -> Result<Option<u64>, RespError> {
    match line {
        b"-1" if null_ok => Ok(None),
        b"?" => Err(STREAMED),
        [] => Err(INVALID_LENGTH),
        _ => line
            .iter()
            .try_fold(0u64, |n, &b| {
                if !b.is_ascii_digit() {
                    return None;
                }
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            })
            .map(Some)
            .ok_or(INVALID_LENGTH),
    }
}

fn parse_int(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RespError::Malformed("invalid integer"))
}

/// Checks the body of a line-class value.
fn check_line(ty: u8, line: &[u8]) -> Result<(), RespError> {
    let ok = match ty {
        b':' => return parse_int(line).map(drop),
        b'_' => line.is_empty(),
        b'#' => line == b"t" || line == b"f",
        b',' => std::str::from_utf8(line).is_ok_and(|s| s.parse::<f64>().is_ok()),
        b'(' => {
            let digits = line
                .strip_prefix(b"-")
                .or(line.strip_prefix(b"+"))
                .unwrap_or(line);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(RespError::Malformed(match ty {
            b'_' => "invalid null",
            b'#' => "invalid boolean",
            b',' => "invalid double",
            _ => "invalid big number",
        }))
    }
}

/// Checks a blob length against the limit and returns where its payload ends.
fn blob_end(payload_start: usize, len: u64, limits: &Limits) -> Result<usize, RespError> {
    let too_large = RespError::TooLarge {
        what: "bulk string",
        len,
        max: limits.max_bulk_len,
    };
    if len > limits.max_bulk_len as u64 {
        return Err(too_large);
    }
    payload_start.checked_add(len as usize).ok_or(too_large)
}

fn check_verbatim(payload: &[u8]) -> Result<(), RespError> {
    // RESP3 spec: the payload starts with a three-byte format and ':' ("txt:", "mkd:").
    if payload.len() >= 4 && payload[3] == b':' {
        Ok(())
    } else {
        Err(RespError::Malformed(
            "verbatim string without a format prefix",
        ))
    }
}

/// Checks an aggregate header; returns the number of elements to read (pairs count twice),
/// or `None` for the RESP2 null array.
fn aggregate_len(
    ty: u8,
    line: &[u8],
    depth: usize,
    limits: &Limits,
) -> Result<Option<u64>, RespError> {
    let Some(count) = parse_len(line, ty == b'*')? else {
        return Ok(None);
    };
    if depth >= limits.max_depth {
        return Err(RespError::TooDeep {
            max: limits.max_depth,
        });
    }
    if count > limits.max_array_len as u64 {
        return Err(RespError::TooLarge {
            what: aggregate_name(ty),
            len: count,
            max: limits.max_array_len,
        });
    }
    Ok(Some(if matches!(ty, b'%' | b'|') {
        count * 2
    } else {
        count
    }))
}
