//! `ROW_COUNT()` and `FOUND_ROWS()` are per connection upstream, and a client's next statement
//! may land on another connection: the proxy keeps the client's own values and answers
//! `SELECT ROW_COUNT()` / `SELECT FOUND_ROWS()` itself (with an optional alias) when the client
//! holds no upstream. (While it holds one, that connection's own answer is right and the
//! statement goes there.)

use bytes::{BufMut, BytesMut};

use super::super::protocol::capabilities::{CLIENT_DEPRECATE_EOF, Capabilities};
use super::super::protocol::packet::{put_lenenc_bytes, put_lenenc_int};
use super::super::protocol::response::{EofPacket, OkPacket};
use super::super::protocol::sqlscan::{Lexer, Token};
use super::{Flow, Session, Writer, flow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    RowCount,
    FoundRows,
}

/// `SELECT ROW_COUNT()` / `SELECT FOUND_ROWS()`, optionally `AS alias` and `;`: the counter and
/// the column name the server would give it.
pub fn counter_read(sql: &[u8]) -> Option<(Counter, String)> {
    let toks: Vec<Token<'_>> = Lexer::new(sql).map(|t| t.token).take(8).collect();
    fn word<'a>(t: Option<&Token<'a>>) -> Option<&'a [u8]> {
        match t {
            Some(Token::Word(w)) => Some(*w),
            _ => None,
        }
    }
    if !word(toks.first())?.eq_ignore_ascii_case(b"SELECT") {
        return None;
    }
    let func = word(toks.get(1))?;
    let counter = if func.eq_ignore_ascii_case(b"ROW_COUNT") {
        Counter::RowCount
    } else if func.eq_ignore_ascii_case(b"FOUND_ROWS") {
        Counter::FoundRows
    } else {
        return None;
    };
    if toks.get(2) != Some(&Token::Punct(b'(')) || toks.get(3) != Some(&Token::Punct(b')')) {
        return None;
    }
    let mut rest = &toks[4..];
    let mut name = format!("{}()", String::from_utf8_lossy(func));
    if let Some(Token::Word(w)) = rest.first()
        && w.eq_ignore_ascii_case(b"AS")
    {
        rest = &rest[1..];
    }
    if let Some(Token::Word(alias)) = rest.first() {
        name = String::from_utf8_lossy(alias).into_owned();
        rest = &rest[1..];
    }
    while rest.first() == Some(&Token::Punct(b';')) {
        rest = &rest[1..];
    }
    rest.is_empty().then_some((counter, name))
}

impl Session {
    pub(super) async fn answer_counter(
        &mut self,
        writer: &mut Writer,
        counter: Counter,
        name: &str,
    ) -> Flow {
        let value = match counter {
            Counter::RowCount => self.state.row_count,
            Counter::FoundRows => self.state.found_rows as i64,
        };
        let (caps, status) = (self.caps, self.state.local_status());
        flow(
            async {
                writer.send(&[1]).await?;
                writer.send_with(|o| column_definition(o, name)).await?;
                if !caps.contains(CLIENT_DEPRECATE_EOF) {
                    writer
                        .send_with(|o| {
                            EofPacket {
                                warnings: 0,
                                status,
                            }
                            .encode(o, caps)
                        })
                        .await?;
                }
                writer
                    .send_with(|o| put_lenenc_bytes(o, value.to_string().as_bytes()))
                    .await?;
                writer.send_with(|o| terminator(o, caps, status)).await?;
                writer.flush().await
            }
            .await,
        )
    }
}

/// A BIGINT column, as the server describes `ROW_COUNT()`.
fn column_definition(out: &mut BytesMut, name: &str) {
    for field in [&b"def"[..], b"", b"", b"", name.as_bytes(), b""] {
        put_lenenc_bytes(out, field);
    }
    put_lenenc_int(out, 0x0c);
    out.put_u16_le(63); // binary
    out.put_u32_le(21);
    out.put_u8(0x08); // MYSQL_TYPE_LONGLONG
    out.put_u16_le(0x0081); // NOT_NULL | BINARY
    out.put_u8(0);
    out.put_u16_le(0);
}

/// The end of a result (or the answer to COM_SET_OPTION): an EOF, or for
/// `CLIENT_DEPRECATE_EOF` clients an OK with the EOF header.
pub(super) fn terminator(out: &mut BytesMut, caps: Capabilities, status: u16) {
    if caps.contains(CLIENT_DEPRECATE_EOF) {
        OkPacket {
            status,
            ..OkPacket::default()
        }
        .encode_as_eof(out, caps);
    } else {
        EofPacket {
            warnings: 0,
            status,
        }
        .encode(out, caps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_of_the_counters_are_recognised_with_their_column_names() {
        assert_eq!(
            counter_read(b"SELECT ROW_COUNT()"),
            Some((Counter::RowCount, "ROW_COUNT()".into()))
        );
        assert_eq!(
            counter_read(b"select found_rows() as n;"),
            Some((Counter::FoundRows, "n".into()))
        );
        assert_eq!(
            counter_read(b"SELECT ROW_COUNT() + 1"),
            None,
            "anything more goes upstream"
        );
        assert_eq!(counter_read(b"SELECT LAST_INSERT_ID()"), None);
    }
}
