use super::*;
use crate::mysql::protocol::capabilities::CLIENT_PROTOCOL_41;

const PLAIN: Capabilities = Capabilities(CLIENT_PROTOCOL_41);
const ATTRS: Capabilities = Capabilities(CLIENT_PROTOCOL_41 | CLIENT_QUERY_ATTRIBUTES);

fn decode(payload: &[u8]) -> ClientCommand<'_> {
    ClientCommand::decode(payload, PLAIN).unwrap()
}

#[test]
fn query_without_attributes() {
    assert_eq!(
        decode(b"\x03select @@version_comment limit 1"),
        ClientCommand::Query {
            sql: b"select @@version_comment limit 1",
            attributes: b""
        }
    );
}

#[test]
fn query_with_an_empty_attribute_block() {
    // What mysql-connector sends with query attributes negotiated and none set.
    let cmd = ClientCommand::decode(b"\x03\x00\x01SELECT 1", ATTRS).unwrap();
    assert_eq!(
        cmd,
        ClientCommand::Query {
            sql: b"SELECT 1",
            attributes: b"\x00\x01"
        }
    );
}

#[test]
fn query_with_attributes_is_skipped_to_the_text() {
    // Three attributes: a string "a"="xyz", a LONGLONG "n"=7, and a NULL-flagged string "z".
    let mut payload = vec![0x03, 0x03, 0x01, 0b0000_0100, 0x01];
    payload.extend_from_slice(b"\xfe\x00\x01a"); // STRING, name "a"
    payload.extend_from_slice(b"\x08\x00\x01n"); // LONGLONG, name "n"
    payload.extend_from_slice(b"\xfe\x00\x01z"); // STRING, name "z" (null: no value)
    payload.extend_from_slice(b"\x03xyz");
    payload.extend_from_slice(&7u64.to_le_bytes());
    let attrs_end = payload.len();
    payload.extend_from_slice(b"SELECT 'q'");
    let ClientCommand::Query { sql, attributes } = ClientCommand::decode(&payload, ATTRS).unwrap()
    else {
        panic!("not a query")
    };
    assert_eq!(sql, b"SELECT 'q'");
    assert_eq!(attributes, &payload[1..attrs_end]);
}

#[test]
fn query_attribute_dates_use_a_length_byte() {
    let mut payload = vec![0x03, 0x01, 0x01, 0x00, 0x01];
    payload.extend_from_slice(b"\x0c\x00\x02ts"); // DATETIME "ts"
    payload.extend_from_slice(b"\x04\xe8\x07\x01\x02"); // 4-byte date 2024-01-02
    payload.extend_from_slice(b"DO 1");
    let cmd = ClientCommand::decode(&payload, ATTRS).unwrap();
    assert!(matches!(cmd, ClientCommand::Query { sql: b"DO 1", .. }));
}

#[test]
fn truncated_query_attributes_are_errors() {
    for bad in [
        &b"\x03"[..],
        b"\x03\x01",
        b"\x03\x01\x01",
        b"\x03\x01\x01\x00",
        b"\x03\x01\x01\x00\x00",
        b"\x03\x01\x01\x00\x01\xfe\x00",
        b"\x03\x01\x01\x00\x01\xfe\x00\x00\x05ab",
        b"\x03\xfd\xff\xff\xff\x01",
    ] {
        assert!(ClientCommand::decode(bad, ATTRS).is_err(), "{bad:?}");
    }
}

#[test]
fn simple_commands() {
    assert_eq!(decode(b"\x0e"), ClientCommand::Ping);
    assert_eq!(decode(b"\x01"), ClientCommand::Quit);
    assert_eq!(decode(b"\x09"), ClientCommand::Statistics);
    assert_eq!(decode(b"\x1f"), ClientCommand::ResetConnection);
    assert_eq!(decode(b"\x02shop"), ClientCommand::InitDb(b"shop"));
    assert_eq!(
        decode(b"\x1b\x01\x00"),
        ClientCommand::SetOption(MYSQL_OPTION_MULTI_STATEMENTS_OFF)
    );
    assert_eq!(
        decode(b"\x0c\x2a\x00\x00\x00"),
        ClientCommand::ProcessKill(42)
    );
    assert_eq!(
        decode(b"\x11raw"),
        ClientCommand::ChangeUser { raw: b"raw" }
    );
    assert_eq!(
        decode(b"\x12\x01"),
        ClientCommand::Other {
            command: COM_BINLOG_DUMP,
            body: b"\x01"
        }
    );
    assert_eq!(
        ClientCommand::decode(b"", PLAIN),
        Err(ProtocolError::Malformed("command byte"))
    );
}

#[test]
fn prepared_statement_commands() {
    assert_eq!(
        decode(b"\x16SELECT ?"),
        ClientCommand::StmtPrepare(b"SELECT ?")
    );
    // MySQL docs, COM_STMT_EXECUTE example: stmt 1, no cursor, 1 iteration, no params.
    assert_eq!(
        decode(b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"),
        ClientCommand::StmtExecute {
            stmt_id: 1,
            flags: 0,
            iterations: 1,
            params: b""
        }
    );
    assert_eq!(decode(b"\x19\x05\x00\x00\x00"), ClientCommand::StmtClose(5));
    assert_eq!(decode(b"\x1a\x05\x00\x00\x00"), ClientCommand::StmtReset(5));
    assert_eq!(
        decode(b"\x18\x05\x00\x00\x00\x02\x00blob"),
        ClientCommand::StmtSendLongData {
            stmt_id: 5,
            param_id: 2,
            data: b"blob"
        }
    );
    assert_eq!(
        decode(b"\x1c\x05\x00\x00\x00\x80\x00\x00\x00"),
        ClientCommand::StmtFetch {
            stmt_id: 5,
            rows: 128
        }
    );
    assert_eq!(
        ClientCommand::decode(b"\x19\x05\x00", PLAIN),
        Err(ProtocolError::Malformed("statement id"))
    );
    assert_eq!(
        ClientCommand::decode(b"\x1c\x05\x00\x00\x00\x80", PLAIN),
        Err(ProtocolError::Malformed("fetch row count"))
    );
}

#[test]
fn field_list() {
    assert_eq!(
        decode(b"\x04users\x00na%"),
        ClientCommand::FieldList {
            table: b"users",
            wildcard: b"na%"
        }
    );
    assert_eq!(
        decode(b"\x04users"),
        ClientCommand::FieldList {
            table: b"users",
            wildcard: b""
        }
    );
}

#[test]
fn encoders_produce_what_the_decoder_reads() {
    let mut out = BytesMut::new();
    write_query(&mut out, b"SET SESSION sql_mode='ANSI'", ATTRS);
    assert_eq!(&out[..3], b"\x03\x00\x01");
    assert_eq!(
        ClientCommand::decode(&out, ATTRS).unwrap(),
        ClientCommand::Query {
            sql: b"SET SESSION sql_mode='ANSI'",
            attributes: b"\x00\x01"
        }
    );
    out.clear();
    write_query(&mut out, b"SELECT 1", PLAIN);
    assert_eq!(&out[..], b"\x03SELECT 1");
    out.clear();
    write_init_db(&mut out, b"app");
    assert_eq!(decode(&out), ClientCommand::InitDb(b"app"));
    out.clear();
    write_simple(&mut out, COM_RESET_CONNECTION);
    assert_eq!(decode(&out), ClientCommand::ResetConnection);
    out.clear();
    write_stmt_prepare(&mut out, b"SELECT ?");
    assert_eq!(decode(&out), ClientCommand::StmtPrepare(b"SELECT ?"));
    out.clear();
    write_stmt_id_command(&mut out, COM_STMT_CLOSE, 9);
    assert_eq!(decode(&out), ClientCommand::StmtClose(9));
}
