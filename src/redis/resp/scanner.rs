//! The reply scanner: finds where each reply frame ends, skipping blob payloads by length.

use super::{
    BLOB_CRLF, Class, Limits, Line, RespError, aggregate_len, blob_end, check_line, check_verbatim,
    classify, find_line, parse_len,
};

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
    pub(super) examined: usize,
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
