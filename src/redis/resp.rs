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
//! This file is over the usual size because scanner, parser and decoder share the line and
//! length rules below; splitting them would scatter those rules.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

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

/// Facts about one complete frame found by the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Bytes of the whole frame, including any attribute (`|`) prefix.
    pub len: usize,
    /// Type byte of the value itself, after attributes.
    pub kind: u8,
}

impl FrameInfo {
    pub fn is_error(&self) -> bool {
        matches!(self.kind, b'-' | b'!')
    }

    pub fn is_push(&self) -> bool {
        self.kind == b'>'
    }
}

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

#[derive(Debug, Clone, Copy)]
struct Open {
    remaining: u64,
    /// An attribute annotates the value after it and is not an element of its parent.
    attribute: bool,
}

#[derive(Debug, Clone, Copy)]
struct PendingBlob {
    end: usize,
    verbatim: bool,
}

/// Incremental frame-boundary scanner for replies (every RESP2 and RESP3 type except streamed
/// ones). After an error the stream is out of sync; `reset` before any reuse.
#[derive(Debug, Default)]
pub struct Scanner {
    limits: Limits,
    /// Everything before `pos` belongs to completed parts of the current frame.
    pos: usize,
    /// Where the search for the current line's CRLF resumes.
    search_from: usize,
    blob: Option<PendingBlob>,
    open: Vec<Open>,
    kind: u8,
    #[cfg(test)]
    examined: usize,
}

impl Scanner {
    pub fn new(limits: Limits) -> Self {
        Scanner {
            limits,
            ..Scanner::default()
        }
    }

    pub fn reset(&mut self) {
        self.pos = 0;
        self.search_from = 0;
        self.blob = None;
        self.open.clear();
        self.kind = 0;
    }

    /// `buf` starts at the first byte of the frame and holds everything received so far; it
    /// may grow between calls but must not otherwise change until a frame is returned.
    /// On `Ok(Some(info))` the frame is `buf[..info.len]` and the scanner is ready for the next.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<FrameInfo>, RespError> {
        loop {
            if let Some(blob) = self.blob {
                let Some(tail) = buf.get(blob.end..blob.end + 2) else {
                    return Ok(None);
                };
                self.count(2);
                if tail != b"\r\n" {
                    return Err(BLOB_CRLF);
                }
                if blob.verbatim {
                    check_verbatim(&buf[self.pos..blob.end])?;
                }
                self.blob = None;
                self.pos = blob.end + 2;
                self.search_from = self.pos;
                if self.value_done() {
                    return Ok(Some(self.take()));
                }
                continue;
            }
            let Some(&ty) = buf.get(self.pos) else {
                return Ok(None);
            };
            let class = classify(ty)?;
            let start = self.pos + 1;
            let from = self.search_from.max(start);
            let end = match find_line(buf, start, from, ty, &self.limits)? {
                Line::Partial(resume) => {
                    self.count(resume.saturating_sub(from));
                    self.search_from = resume;
                    return Ok(None);
                }
                Line::Found(end) => end,
            };
            self.count(end + 2 - from + 1);
            let line = &buf[start..end];
            let next = end + 2;
            if self.open.is_empty() && ty != b'|' {
                self.kind = ty;
            }
            let complete = match class {
                Class::Line => {
                    check_line(ty, line)?;
                    true
                }
                Class::Blob => match parse_len(line, ty == b'$')? {
                    None => true,
                    Some(len) => {
                        let end = blob_end(next, len, &self.limits)?;
                        if ty == b'=' && len < 4 {
                            check_verbatim(&[])?;
                        }
                        self.blob = Some(PendingBlob {
                            end,
                            verbatim: ty == b'=',
                        });
                        false
                    }
                },
                Class::Aggregate => match aggregate_len(ty, line, self.open.len(), &self.limits)? {
                    None => true,
                    Some(0) => ty != b'|',
                    Some(remaining) => {
                        self.open.push(Open {
                            remaining,
                            attribute: ty == b'|',
                        });
                        false
                    }
                },
            };
            self.pos = next;
            self.search_from = next;
            if complete && self.value_done() {
                return Ok(Some(self.take()));
            }
        }
    }

    /// Records that a value ended; true when that completes the whole frame.
    fn value_done(&mut self) -> bool {
        while let Some(top) = self.open.last_mut() {
            top.remaining -= 1;
            if top.remaining > 0 {
                return false;
            }
            let attribute = top.attribute;
            self.open.pop();
            if attribute {
                return false;
            }
        }
        true
    }

    fn take(&mut self) -> FrameInfo {
        let info = FrameInfo {
            len: self.pos,
            kind: self.kind,
        };
        self.reset();
        info
    }

    #[cfg(test)]
    fn count(&mut self, n: usize) {
        self.examined += n;
    }

    #[cfg(not(test))]
    fn count(&mut self, _n: usize) {}
}

/// A client command: a RESP array of bulk strings, or an inline command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Bytes consumed from the buffer.
    pub len: usize,
    pub inline: bool,
    /// RESP: ranges into the frame `buf[..len]`. Inline: ranges into `inline_args`.
    pub args: Args,
    /// The unescaped argument bytes of an inline command; `None` for RESP.
    pub inline_args: Option<Bytes>,
}

impl Command {
    /// Argument `i`, given the frame bytes `buf[..len]`. Panics if `i >= argc()`.
    pub fn arg<'a>(&'a self, frame: &'a [u8], i: usize) -> &'a [u8] {
        let range = self.args.get(i).expect("argument index below argc()");
        match &self.inline_args {
            Some(unescaped) => &unescaped[range],
            None => &frame[range],
        }
    }

    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// ASCII case-insensitive comparison of the command name; false for an empty command.
    pub fn name_is(&self, frame: &[u8], upper: &str) -> bool {
        self.arg_is(frame, 0, upper)
    }

    /// ASCII case-insensitive comparison of argument `i`; false when there is no such argument.
    pub fn arg_is(&self, frame: &[u8], i: usize, upper: &str) -> bool {
        i < self.argc() && self.arg(frame, i).eq_ignore_ascii_case(upper.as_bytes())
    }
}

/// How many argument ranges a command holds without allocating: GET, SET, HSET, EXPIRE.
const INLINE_ARGS: usize = 4;

/// A command's argument ranges: the first `INLINE_ARGS` in place, so that the usual command
/// costs no allocation, the rest on the heap.
#[derive(Debug, Clone, Default)]
pub struct Args {
    len: usize,
    head: [Range<usize>; INLINE_ARGS],
    rest: Vec<Range<usize>>,
}

impl Args {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<Range<usize>> {
        match i {
            _ if i >= self.len => None,
            _ if i < INLINE_ARGS => Some(self.head[i].clone()),
            _ => self.rest.get(i - INLINE_ARGS).cloned(),
        }
    }

    fn push(&mut self, range: Range<usize>) {
        if self.len < INLINE_ARGS {
            self.head[self.len] = range;
        } else {
            self.rest.push(range);
        }
        self.len += 1;
    }

    fn clear(&mut self) {
        self.len = 0;
        self.rest.clear();
    }
}

impl PartialEq for Args {
    fn eq(&self, other: &Args) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.get(i) == other.get(i))
    }
}

impl Eq for Args {}

/// Incremental parser for client commands, with the same resumable contract as `Scanner::scan`.
/// Like redis-server, a buffer starting with `*` is RESP and anything else is an inline line.
#[derive(Debug, Default)]
pub struct CommandParser {
    limits: Limits,
    /// Past the array header once non-zero; everything before it is parsed.
    pos: usize,
    search_from: usize,
    remaining: usize,
    bulk_end: Option<usize>,
    args: Args,
}

impl CommandParser {
    pub fn new(limits: Limits) -> Self {
        CommandParser {
            limits,
            ..CommandParser::default()
        }
    }

    /// After an error the stream is out of sync; drop the parser with the connection.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<Command>, RespError> {
        match buf.first() {
            None => Ok(None),
            Some(b'*') => self.parse_resp(buf),
            Some(_) => self.parse_inline(buf),
        }
    }

    fn parse_resp(&mut self, buf: &[u8]) -> Result<Option<Command>, RespError> {
        if self.pos == 0 {
            let Some(end) = self.number_line(buf, 0)? else {
                return Ok(None);
            };
            // redis-server treats `*-1` and `*0` as an empty command and skips it.
            match parse_len(&buf[1..end], true)? {
                None | Some(0) => return Ok(Some(self.finish(end + 2))),
                Some(n) if n > self.limits.max_array_len as u64 => {
                    return Err(RespError::TooLarge {
                        what: "array",
                        len: n,
                        max: self.limits.max_array_len,
                    });
                }
                Some(n) => {
                    self.remaining = n as usize;
                    self.args.clear();
                    self.pos = end + 2;
                    self.search_from = self.pos;
                }
            }
        }
        loop {
            if let Some(end) = self.bulk_end {
                let Some(tail) = buf.get(end..end + 2) else {
                    return Ok(None);
                };
                if tail != b"\r\n" {
                    return Err(BLOB_CRLF);
                }
                self.args.push(self.pos..end);
                self.bulk_end = None;
                self.pos = end + 2;
                self.search_from = self.pos;
                self.remaining -= 1;
                if self.remaining == 0 {
                    return Ok(Some(self.finish(self.pos)));
                }
                continue;
            }
            match buf.get(self.pos) {
                None => return Ok(None),
                Some(b'$') => {}
                Some(_) => return Err(RespError::Malformed("expected '$' in a command array")),
            }
            let Some(end) = self.number_line(buf, self.pos)? else {
                return Ok(None);
            };
            let len = parse_len(&buf[self.pos + 1..end], false)?.unwrap_or(0);
            self.bulk_end = Some(blob_end(end + 2, len, &self.limits)?);
            self.pos = end + 2;
        }
    }

    /// Finds the end of the length line whose type byte is at `at`.
    fn number_line(&mut self, buf: &[u8], at: usize) -> Result<Option<usize>, RespError> {
        match find_line(buf, at + 1, self.search_from, buf[at], &self.limits)? {
            Line::Found(end) => Ok(Some(end)),
            Line::Partial(resume) => {
                self.search_from = resume;
                Ok(None)
            }
        }
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Command>, RespError> {
        let max = self.limits.max_inline_len;
        // A line may hold `max` bytes plus "\r\n"; looking further would make the outcome
        // depend on how the bytes were split across reads.
        let window_end = buf.len().min(max.saturating_add(2));
        let from = self.search_from.min(window_end);
        let too_large = RespError::TooLarge {
            what: "inline command",
            len: max as u64 + 1,
            max,
        };
        let Some(newline) = buf[from..window_end].iter().position(|&b| b == b'\n') else {
            if window_end < buf.len() || buf.len() >= max.saturating_add(2) {
                return Err(too_large);
            }
            self.search_from = window_end;
            return Ok(None);
        };
        let newline = from + newline;
        let line = &buf[..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            return Err(too_large);
        }
        let (args, unescaped) = split_inline(line)?;
        self.reset();
        Ok(Some(Command {
            len: newline + 1,
            inline: true,
            args,
            inline_args: Some(Bytes::from(unescaped)),
        }))
    }

    fn finish(&mut self, len: usize) -> Command {
        let args = std::mem::take(&mut self.args);
        self.reset();
        Command {
            len,
            inline: false,
            args,
            inline_args: None,
        }
    }

    fn reset(&mut self) {
        self.pos = 0;
        self.search_from = 0;
        self.remaining = 0;
        self.bulk_end = None;
        self.args.clear();
    }
}

/// C `isspace`, which sdssplitargs uses between arguments and after a closing quote.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: Option<u8>) -> Option<u8> {
    char::from(b?).to_digit(16).map(|d| d as u8)
}

/// Splits an inline line exactly like redis's `sdssplitargs`, returning argument ranges into
/// the unescaped bytes.
fn split_inline(line: &[u8]) -> Result<(Args, Vec<u8>), RespError> {
    // sdssplitargs reads a C string: a NUL ends the line wherever it is.
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let at = |i: usize| line.get(i).copied();
    let mut out = Vec::with_capacity(line.len());
    let mut args = Args::default();
    let mut p = 0;
    loop {
        while at(p).is_some_and(is_c_space) {
            p += 1;
        }
        if p >= line.len() {
            return Ok((args, out));
        }
        let start = out.len();
        let mut quote = None;
        loop {
            let c = at(p);
            match (quote, c) {
                (Some(_), None) => return Err(UNBALANCED),
                (Some(b'"'), Some(b'\\')) if at(p + 1) == Some(b'x') => {
                    match (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        (Some(hi), Some(lo)) => {
                            out.push((hi << 4) | lo);
                            p += 3;
                        }
                        _ => {
                            out.push(b'x');
                            p += 1;
                        }
                    }
                }
                (Some(b'"'), Some(b'\\')) if p + 1 < line.len() => {
                    p += 1;
                    out.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                }
                (Some(b'\''), Some(b'\\')) if at(p + 1) == Some(b'\'') => {
                    p += 1;
                    out.push(b'\'');
                }
                (Some(q), Some(ch)) if ch == q => {
                    // A closing quote must be followed by a space or the end of the line.
                    if at(p + 1).is_some_and(|n| !is_c_space(n)) {
                        return Err(UNBALANCED);
                    }
                    p += 1;
                    break;
                }
                (Some(_), Some(ch)) => out.push(ch),
                (None, None | Some(b' ' | b'\n' | b'\r' | b'\t')) => break,
                (None, Some(q @ (b'"' | b'\''))) => quote = Some(q),
                (None, Some(ch)) => out.push(ch),
            }
            p += 1;
        }
        args.push(start..out.len());
    }
}

fn put_decimal(out: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn put_header(out: &mut BytesMut, ty: u8, n: usize) {
    out.put_u8(ty);
    put_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Writes a line, replacing CR and LF with spaces so the text cannot break framing.
fn put_line(out: &mut BytesMut, ty: u8, text: &str) {
    out.reserve(text.len() + 3);
    out.put_u8(ty);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

pub fn encode_command(out: &mut BytesMut, args: &[&[u8]]) {
    out.reserve(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    put_header(out, b'*', args.len());
    for arg in args {
        encode_bulk(out, arg);
    }
}

/// `+s\r\n`; CR and LF in `s` become spaces.
pub fn encode_simple(out: &mut BytesMut, s: &str) {
    put_line(out, b'+', s);
}

/// `-msg\r\n`; CR and LF in `msg` become spaces.
pub fn encode_error(out: &mut BytesMut, msg: &str) {
    put_line(out, b'-', msg);
}

pub fn encode_integer(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    if n < 0 {
        out.put_u8(b'-');
    }
    put_decimal(out, n.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

pub fn encode_bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    put_header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// `_\r\n` in RESP3, `$-1\r\n` in RESP2.
pub fn encode_null(out: &mut BytesMut, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

pub fn encode_array_header(out: &mut BytesMut, n: usize) {
    put_header(out, b'*', n);
}

/// `%n` in RESP3; a flat array of `2n` elements in RESP2.
pub fn encode_map_header(out: &mut BytesMut, n: usize, resp3: bool) {
    if resp3 {
        put_header(out, b'%', n);
    } else {
        put_header(out, b'*', n * 2);
    }
}

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
