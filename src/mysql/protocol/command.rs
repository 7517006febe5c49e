//! Client commands (the first packet of each command phase): byte constants, a borrowing
//! decoder, and encoders for the commands the proxy itself sends upstream.

use bytes::{BufMut, BytesMut};

use super::ProtocolError;
use super::capabilities::{CLIENT_QUERY_ATTRIBUTES, Capabilities};
use super::packet::Reader;

pub const COM_SLEEP: u8 = 0x00;
pub const COM_QUIT: u8 = 0x01;
pub const COM_INIT_DB: u8 = 0x02;
pub const COM_QUERY: u8 = 0x03;
pub const COM_FIELD_LIST: u8 = 0x04;
pub const COM_CREATE_DB: u8 = 0x05;
pub const COM_DROP_DB: u8 = 0x06;
pub const COM_REFRESH: u8 = 0x07;
pub const COM_SHUTDOWN: u8 = 0x08;
pub const COM_STATISTICS: u8 = 0x09;
pub const COM_PROCESS_INFO: u8 = 0x0a;
pub const COM_CONNECT: u8 = 0x0b;
pub const COM_PROCESS_KILL: u8 = 0x0c;
pub const COM_DEBUG: u8 = 0x0d;
pub const COM_PING: u8 = 0x0e;
pub const COM_TIME: u8 = 0x0f;
pub const COM_DELAYED_INSERT: u8 = 0x10;
pub const COM_CHANGE_USER: u8 = 0x11;
pub const COM_BINLOG_DUMP: u8 = 0x12;
pub const COM_TABLE_DUMP: u8 = 0x13;
pub const COM_CONNECT_OUT: u8 = 0x14;
pub const COM_REGISTER_SLAVE: u8 = 0x15;
pub const COM_STMT_PREPARE: u8 = 0x16;
pub const COM_STMT_EXECUTE: u8 = 0x17;
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
pub const COM_STMT_CLOSE: u8 = 0x19;
pub const COM_STMT_RESET: u8 = 0x1a;
pub const COM_SET_OPTION: u8 = 0x1b;
pub const COM_STMT_FETCH: u8 = 0x1c;
pub const COM_DAEMON: u8 = 0x1d;
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1e;
pub const COM_RESET_CONNECTION: u8 = 0x1f;
/// MariaDB: array binding (`MARIADB_CLIENT_STMT_BULK_OPERATIONS`); answered like an execute.
pub const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

/// COM_SET_OPTION values.
pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

/// A decoded client command; slices borrow from the packet payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCommand<'a> {
    Query {
        sql: &'a [u8],
        /// The raw query-attributes block (`CLIENT_QUERY_ATTRIBUTES`), empty if none; strip it
        /// when forwarding to an upstream that did not negotiate the capability.
        attributes: &'a [u8],
    },
    InitDb(&'a [u8]),
    Ping,
    Quit,
    Statistics,
    ResetConnection,
    StmtPrepare(&'a [u8]),
    StmtExecute {
        stmt_id: u32,
        /// Cursor type (`CURSOR_TYPE_READ_ONLY` = 1 …).
        flags: u8,
        iterations: u32,
        /// Null bitmap, types and values, undecoded (their layout needs the parameter count).
        params: &'a [u8],
    },
    StmtClose(u32),
    StmtReset(u32),
    StmtSendLongData {
        stmt_id: u32,
        param_id: u16,
        data: &'a [u8],
    },
    StmtFetch {
        stmt_id: u32,
        rows: u32,
    },
    FieldList {
        table: &'a [u8],
        wildcard: &'a [u8],
    },
    ChangeUser {
        raw: &'a [u8],
    },
    SetOption(u16),
    ProcessKill(u32),
    /// Anything else (replication, deprecated, MariaDB COM_MULTI / bulk execute …).
    Other {
        command: u8,
        body: &'a [u8],
    },
}

impl<'a> ClientCommand<'a> {
    /// Decodes a command payload; `caps` are the capabilities negotiated with this client.
    pub fn decode(payload: &'a [u8], caps: Capabilities) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        let command = r.u8("command byte")?;
        Ok(match command {
            COM_QUERY => {
                let body = r.rest();
                let attributes = if caps.contains(CLIENT_QUERY_ATTRIBUTES) {
                    query_attributes_len(body)?
                } else {
                    0
                };
                Self::Query {
                    sql: &body[attributes..],
                    attributes: &body[..attributes],
                }
            }
            COM_INIT_DB => Self::InitDb(r.rest()),
            COM_PING => Self::Ping,
            COM_QUIT => Self::Quit,
            COM_STATISTICS => Self::Statistics,
            COM_RESET_CONNECTION => Self::ResetConnection,
            COM_STMT_PREPARE => Self::StmtPrepare(r.rest()),
            COM_STMT_EXECUTE => Self::StmtExecute {
                stmt_id: r.u32("statement id")?,
                flags: r.u8("execute flags")?,
                iterations: r.u32("execute iteration count")?,
                params: r.rest(),
            },
            COM_STMT_CLOSE => Self::StmtClose(r.u32("statement id")?),
            COM_STMT_RESET => Self::StmtReset(r.u32("statement id")?),
            COM_STMT_SEND_LONG_DATA => Self::StmtSendLongData {
                stmt_id: r.u32("statement id")?,
                param_id: r.u16("long data parameter id")?,
                data: r.rest(),
            },
            COM_STMT_FETCH => Self::StmtFetch {
                stmt_id: r.u32("statement id")?,
                rows: r.u32("fetch row count")?,
            },
            COM_FIELD_LIST => Self::FieldList {
                table: r.nul_or_rest(),
                wildcard: r.rest(),
            },
            COM_CHANGE_USER => Self::ChangeUser { raw: r.rest() },
            COM_SET_OPTION => Self::SetOption(r.u16("set option value")?),
            COM_PROCESS_KILL => Self::ProcessKill(r.u32("process id")?),
            command => Self::Other {
                command,
                body: r.rest(),
            },
        })
    }
}

/// Length of the query-attributes block in front of a COM_QUERY text (MySQL 8.0.23+):
/// parameter_count, parameter_set_count, then (if any parameters) the null bitmap, the
/// new-params-bound flag, type + name per parameter, and the binary values.
fn query_attributes_len(body: &[u8]) -> Result<usize, ProtocolError> {
    let mut r = Reader::new(body);
    let count = r.lenenc_int("query attribute count")?;
    r.lenenc_int("query attribute set count")?;
    if count > 0 {
        // Each parameter takes at least 3 bytes (type + empty name); refuse absurd counts
        // before allocating anything.
        if count > body.len() as u64 {
            return Err(ProtocolError::Malformed("query attribute count"));
        }
        let count = count as usize;
        let bitmap = r.bytes(count.div_ceil(8), "query attribute null bitmap")?;
        if r.u8("query attribute bound flag")? != 1 {
            return Err(ProtocolError::Malformed("query attribute bound flag"));
        }
        let mut types = Vec::with_capacity(count);
        for _ in 0..count {
            types.push(r.u16("query attribute type")? as u8);
            r.lenenc_bytes("query attribute name")?;
        }
        for (i, &ty) in types.iter().enumerate() {
            if bitmap[i / 8] & (1 << (i % 8)) == 0 {
                skip_binary_value(&mut r, ty)?;
            }
        }
    }
    Ok(body.len() - r.remaining())
}

/// Skips one value in the binary protocol encoding of column type `ty`.
fn skip_binary_value(r: &mut Reader<'_>, ty: u8) -> Result<(), ProtocolError> {
    const WHAT: &str = "query attribute value";
    match ty {
        0x06 => Ok(()),                        // NULL
        0x01 => r.skip(1, WHAT),               // TINY
        0x02 | 0x0d => r.skip(2, WHAT),        // SHORT, YEAR
        0x03 | 0x09 | 0x04 => r.skip(4, WHAT), // LONG, INT24, FLOAT
        0x05 | 0x08 => r.skip(8, WHAT),        // DOUBLE, LONGLONG
        0x07 | 0x0a | 0x0b | 0x0c => {
            // TIMESTAMP, DATE, TIME, DATETIME: length byte + that many bytes
            let n = r.u8(WHAT)?;
            r.skip(usize::from(n), WHAT)
        }
        _ => r.lenenc_bytes(WHAT).map(drop),
    }
}

/// Appends a COM_QUERY payload; with `CLIENT_QUERY_ATTRIBUTES` negotiated, an empty attribute
/// block (0 parameters, 1 set) precedes the text.
pub fn write_query(out: &mut BytesMut, sql: &[u8], caps: Capabilities) {
    out.put_u8(COM_QUERY);
    if caps.contains(CLIENT_QUERY_ATTRIBUTES) {
        out.put_slice(&[0x00, 0x01]);
    }
    out.put_slice(sql);
}

/// Appends a COM_INIT_DB payload.
pub fn write_init_db(out: &mut BytesMut, schema: &[u8]) {
    out.put_u8(COM_INIT_DB);
    out.put_slice(schema);
}

/// Appends a one-byte command (COM_PING, COM_RESET_CONNECTION, COM_QUIT, COM_STATISTICS).
pub fn write_simple(out: &mut BytesMut, command: u8) {
    out.put_u8(command);
}

/// Appends a COM_STMT_PREPARE payload.
pub fn write_stmt_prepare(out: &mut BytesMut, sql: &[u8]) {
    out.put_u8(COM_STMT_PREPARE);
    out.put_slice(sql);
}

/// Appends a COM_STMT_CLOSE or COM_STMT_RESET payload.
pub fn write_stmt_id_command(out: &mut BytesMut, command: u8, stmt_id: u32) {
    out.put_u8(command);
    out.put_u32_le(stmt_id);
}

#[cfg(test)]
mod tests;
