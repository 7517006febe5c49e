//! The client command parser: RESP arrays of bulk strings and inline lines, as redis-server
//! reads them.

use std::ops::Range;

use bytes::Bytes;

use super::{BLOB_CRLF, Limits, Line, RespError, UNBALANCED, blob_end, find_line, parse_len};

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
