use bytes::{BufMut, BytesMut};

use super::*;
use crate::mysql::protocol::capabilities::*;
use crate::mysql::protocol::packet::{put_lenenc_bytes, put_lenenc_int};

const CLASSIC: Capabilities = Capabilities(CLIENT_PROTOCOL_41 | CLIENT_MULTI_RESULTS);
const MODERN: Capabilities = Capabilities(
    CLIENT_PROTOCOL_41 | CLIENT_MULTI_RESULTS | CLIENT_DEPRECATE_EOF | CLIENT_SESSION_TRACK,
);
const AUTOCOMMIT: u16 = SERVER_STATUS_AUTOCOMMIT;

fn column_count(n: u64) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_lenenc_int(&mut out, n);
    out.to_vec()
}

/// A ColumnDefinition41 for a BIGINT column `name` of table `t`.
fn column_def(name: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    for s in ["def", "test", "t", "t", name, name] {
        put_lenenc_bytes(&mut out, s.as_bytes());
    }
    out.put_u8(0x0c);
    out.put_u16_le(63); // binary
    out.put_u32_le(20);
    out.put_u8(0x08); // LONGLONG
    out.put_u16_le(0);
    out.put_u8(0);
    out.put_u16_le(0);
    out.to_vec()
}

fn text_row(values: &[&str]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for v in values {
        put_lenenc_bytes(&mut out, v.as_bytes());
    }
    out.to_vec()
}

fn eof(status: u16) -> Vec<u8> {
    let mut out = BytesMut::new();
    EofPacket {
        warnings: 0,
        status,
    }
    .encode(&mut out, CLASSIC);
    out.to_vec()
}

fn ok(ok: OkPacket, caps: Capabilities) -> Vec<u8> {
    let mut out = BytesMut::new();
    ok.encode(&mut out, caps);
    out.to_vec()
}

fn ok_status(status: u16) -> Vec<u8> {
    ok(
        OkPacket {
            status,
            ..OkPacket::default()
        },
        MODERN,
    )
}

fn ok_as_eof(status: u16) -> Vec<u8> {
    let mut out = BytesMut::new();
    OkPacket {
        status,
        ..OkPacket::default()
    }
    .encode_as_eof(&mut out, MODERN);
    out.to_vec()
}

fn err(code: u16, message: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    ErrPacket::new(code, b"70100", message).encode(&mut out, CLASSIC);
    out.to_vec()
}

/// Feeds all packets; every one but the last must be `Continue`; returns the last event.
fn run(tracker: &mut ResponseTracker, packets: &[Vec<u8>]) -> TrackerEvent {
    let (last, init) = packets.split_last().unwrap();
    for (i, p) in init.iter().enumerate() {
        assert_eq!(
            tracker.feed(p).unwrap(),
            TrackerEvent::Continue,
            "packet {i}: {p:02x?}"
        );
    }
    tracker.feed(last).unwrap()
}

fn done(event: TrackerEvent) -> ResponseEnd {
    match event {
        TrackerEvent::Done(end) => end,
        other => panic!("expected Done, got {other:?}"),
    }
}

#[test]
fn three_row_result_set_with_eof_packets() {
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    let end = done(run(
        &mut t,
        &[
            column_count(1),
            column_def("id"),
            eof(AUTOCOMMIT),
            text_row(&["1"]),
            text_row(&["2"]),
            text_row(&["3"]),
            eof(AUTOCOMMIT | SERVER_STATUS_IN_TRANS),
        ],
    ));
    assert_eq!(end.status, Some(AUTOCOMMIT | SERVER_STATUS_IN_TRANS));
    assert_eq!((end.ok, end.error), (None, None));
    assert!(t.is_done());
}

#[test]
fn three_row_result_set_with_deprecate_eof() {
    let mut t = ResponseTracker::new(COM_QUERY, MODERN);
    let end = done(run(
        &mut t,
        &[
            column_count(2),
            column_def("id"),
            column_def("name"),
            text_row(&["1", "a"]),
            text_row(&["2", ""]),
            text_row(&["3", "c"]),
            ok_as_eof(AUTOCOMMIT),
        ],
    ));
    assert_eq!(end.status, Some(AUTOCOMMIT));
    assert_eq!(end.ok, Some(OkSummary::default()));
}

#[test]
fn a_row_starting_with_an_empty_string_is_not_an_ok() {
    // 0x00 is a zero-length first column in a text row and the header of a binary row.
    let mut t = ResponseTracker::new(COM_STMT_EXECUTE, MODERN);
    let binary_row = b"\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let end = done(run(
        &mut t,
        &[
            column_count(1),
            column_def("id"),
            binary_row.clone(),
            binary_row,
            ok_as_eof(AUTOCOMMIT),
        ],
    ));
    assert_eq!(end.status, Some(AUTOCOMMIT));
}

#[test]
fn two_result_sets_and_a_final_ok_from_a_procedure() {
    let more = AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS;
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    let end = done(run(
        &mut t,
        &[
            column_count(1),
            column_def("a"),
            eof(more),
            text_row(&["1"]),
            eof(more),
            column_count(1),
            column_def("b"),
            eof(more),
            text_row(&["2"]),
            text_row(&["3"]),
            eof(more),
            ok(
                OkPacket {
                    affected_rows: 0,
                    status: AUTOCOMMIT,
                    ..OkPacket::default()
                },
                CLASSIC,
            ),
        ],
    ));
    assert_eq!(end.status, Some(AUTOCOMMIT));
}

#[test]
fn multi_statement_collects_state_changes_from_every_ok() {
    // `SET time_zone='+01:00'; INSERT …; SELECT 1` with session tracking.
    let more = AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS;
    let set = OkPacket {
        status: more,
        session_state_changes: vec![SessionStateChange::SystemVariable {
            name: "time_zone".into(),
            value: "+01:00".into(),
        }],
        ..OkPacket::default()
    };
    let insert = OkPacket {
        affected_rows: 1,
        last_insert_id: 41,
        status: more,
        ..OkPacket::default()
    };
    let mut t = ResponseTracker::new(COM_QUERY, MODERN);
    let end = done(run(
        &mut t,
        &[
            ok(set, MODERN),
            ok(insert, MODERN),
            column_count(1),
            column_def("1"),
            text_row(&["1"]),
            ok_as_eof(AUTOCOMMIT),
        ],
    ));
    assert_eq!(end.status, Some(AUTOCOMMIT));
    assert!(end.state_changed);
    assert_eq!(end.insert_id, Some(41));
    assert_eq!(
        end.session_state_changes,
        vec![SessionStateChange::SystemVariable {
            name: "time_zone".into(),
            value: "+01:00".into()
        }]
    );
}

#[test]
fn local_infile_exchange() {
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    assert_eq!(
        t.feed(b"\xfb/tmp/data.csv").unwrap(),
        TrackerEvent::LocalInfile
    );
    // The client's packets go to the upstream, not to the tracker.
    let mut relay = InfileRelay::default();
    assert!(!relay.feed(1000));
    assert!(!relay.feed(MAX_CHUNK));
    assert!(
        !relay.feed(0),
        "empty trailer of a split packet is not the end"
    );
    assert!(relay.feed(0));
    let loaded = OkPacket {
        affected_rows: 3,
        status: AUTOCOMMIT,
        info: b"Records: 3".to_vec(),
        ..OkPacket::default()
    };
    let end = done(t.feed(&ok(loaded, CLASSIC)).unwrap());
    assert_eq!(end.ok.unwrap().affected_rows, 3);
}

#[test]
fn local_infile_only_answers_com_query() {
    let mut t = ResponseTracker::new(COM_STMT_EXECUTE, CLASSIC);
    assert!(matches!(
        t.feed(b"\xfbfile"),
        Err(ProtocolError::Unexpected { header: 0xfb, .. })
    ));
}

#[test]
fn err_in_the_middle_of_a_result_set_ends_it() {
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    let end = done(run(
        &mut t,
        &[
            column_count(1),
            column_def("id"),
            eof(AUTOCOMMIT | SERVER_STATUS_IN_TRANS),
            text_row(&["1"]),
            err(1317, "Query execution was interrupted"),
        ],
    ));
    assert_eq!(
        end.error,
        Some(ErrPacket::new(
            1317,
            b"70100",
            "Query execution was interrupted"
        ))
    );
    assert_eq!(end.status, None, "an ERR carries no status");
}

#[test]
fn err_ends_a_multi_statement() {
    let more = AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS;
    let mut t = ResponseTracker::new(COM_QUERY, MODERN);
    let end = done(run(
        &mut t,
        &[ok_status(more), err(1146, "Table 'x' doesn't exist")],
    ));
    assert_eq!(end.error.unwrap().code, 1146);
}

#[test]
fn mariadb_progress_reports_do_not_end_the_response() {
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC.with(MARIADB_CLIENT_PROGRESS));
    let progress = b"\xff\xff\xff\x01\x01\x02\x10\x27\x00\x0cALTER TABLE".to_vec();
    let end = done(run(
        &mut t,
        &[progress.clone(), progress, ok_status(AUTOCOMMIT)],
    ));
    assert_eq!(end.error, None);
}

fn prepare_ok(stmt_id: u32, columns: u16, params: u16) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32_le(stmt_id);
    out.put_u16_le(columns);
    out.put_u16_le(params);
    out.put_u8(0);
    out.put_u16_le(0);
    out.to_vec()
}

#[test]
fn prepare_with_params_and_columns() {
    // `SELECT id, name FROM t WHERE a = ? AND b = ?`
    let mut t = ResponseTracker::new(COM_STMT_PREPARE, CLASSIC);
    let end = done(run(
        &mut t,
        &[
            prepare_ok(7, 2, 2),
            column_def("?"),
            column_def("?"),
            eof(AUTOCOMMIT),
            column_def("id"),
            column_def("name"),
            eof(AUTOCOMMIT),
        ],
    ));
    assert_eq!(
        end.prepared,
        Some(PreparedOk {
            stmt_id: 7,
            columns: 2,
            params: 2,
            warnings: 0
        })
    );
    assert_eq!(end.status, Some(AUTOCOMMIT));

    let mut t = ResponseTracker::new(COM_STMT_PREPARE, MODERN);
    let end = done(run(
        &mut t,
        &[
            prepare_ok(8, 1, 2),
            column_def("?"),
            column_def("?"),
            column_def("id"),
        ],
    ));
    assert_eq!(end.prepared.unwrap().stmt_id, 8);
}

#[test]
fn prepare_shapes_without_params_or_columns() {
    let mut t = ResponseTracker::new(COM_STMT_PREPARE, CLASSIC);
    assert_eq!(
        done(t.feed(&prepare_ok(1, 0, 0)).unwrap())
            .prepared
            .unwrap()
            .stmt_id,
        1
    );
    let mut t = ResponseTracker::new(COM_STMT_PREPARE, CLASSIC);
    done(run(&mut t, &[prepare_ok(2, 0, 1), column_def("?"), eof(0)]));
    let mut t = ResponseTracker::new(COM_STMT_PREPARE, CLASSIC);
    done(run(&mut t, &[prepare_ok(3, 1, 0), column_def("x"), eof(0)]));
    let mut t = ResponseTracker::new(COM_STMT_PREPARE, CLASSIC);
    assert_eq!(
        done(t.feed(&err(1064, "syntax")).unwrap())
            .error
            .unwrap()
            .code,
        1064
    );
    // The 9-byte form without a warning count.
    let mut t = ResponseTracker::new(COM_STMT_PREPARE, CLASSIC);
    done(t.feed(&prepare_ok(4, 0, 0)[..9]).unwrap());
}

#[test]
fn execute_with_a_cursor_sends_metadata_only_then_fetch_streams_rows() {
    let cursor = AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS;
    let mut t = ResponseTracker::new(COM_STMT_EXECUTE, CLASSIC);
    let end = done(run(
        &mut t,
        &[column_count(1), column_def("id"), eof(cursor)],
    ));
    assert_eq!(end.status, Some(cursor));

    let mut t = ResponseTracker::new(COM_STMT_FETCH, CLASSIC);
    let row = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let end = done(run(
        &mut t,
        &[row.clone(), row, eof(cursor | SERVER_STATUS_LAST_ROW_SENT)],
    ));
    assert_eq!(end.status, Some(cursor | SERVER_STATUS_LAST_ROW_SENT));
}

#[test]
fn execute_with_a_cursor_under_deprecate_eof_ends_with_an_ok() {
    let cursor = AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS;
    let mut t = ResponseTracker::new(COM_STMT_EXECUTE, MODERN);
    let end = done(run(
        &mut t,
        &[column_count(1), column_def("id"), ok_as_eof(cursor)],
    ));
    assert_eq!(end.status, Some(cursor));
}

#[test]
fn a_16_mib_row_split_in_two_whose_tail_looks_like_an_eof() {
    // One text column of 16 MiB + 4 bytes: lenenc 0xFE + 8-byte length, then the data. The
    // first fragment is exactly MAX_CHUNK bytes and starts with 0xFE; the second is 5 bytes
    // that start with 0xFE too — an EOF lookalike.
    let value_len = MAX_CHUNK - 9 + 5;
    let mut first = vec![0xFE];
    first.extend_from_slice(&(value_len as u64).to_le_bytes());
    first.resize(MAX_CHUNK, b'x');
    let tail = b"\xfe\x00\x00\x02\x00".to_vec();
    for caps in [CLASSIC, MODERN] {
        let terminator = if caps == CLASSIC {
            eof(AUTOCOMMIT)
        } else {
            ok_as_eof(AUTOCOMMIT)
        };
        let mut t = ResponseTracker::new(COM_QUERY, caps);
        let end = done(run(
            &mut t,
            &[
                column_count(1),
                column_def("blob"),
                if caps == CLASSIC {
                    eof(0)
                } else {
                    text_row(&["small"])
                },
                first.clone(),
                tail.clone(),
                text_row(&["after"]),
                terminator,
            ],
        ));
        assert_eq!(end.status, Some(AUTOCOMMIT));
    }
}

#[test]
fn a_row_of_exactly_16_mib_minus_1_ends_with_an_empty_packet() {
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    for p in [column_count(1), column_def("blob"), eof(0)] {
        assert_eq!(t.feed(&p).unwrap(), TrackerEvent::Continue);
    }
    // Relayed without buffering: only a prefix of the big fragment is shown to the tracker.
    assert_eq!(
        t.feed_head(MAX_CHUNK, b"\xfd\xfc\xff\xff").unwrap(),
        TrackerEvent::Continue
    );
    assert_eq!(
        t.feed_head(0, b"").unwrap(),
        TrackerEvent::Continue,
        "empty trailer"
    );
    // A first fragment starting with 0xFE shown as a prefix is still a row.
    assert_eq!(
        t.feed_head(MAX_CHUNK, b"\xfe").unwrap(),
        TrackerEvent::Continue
    );
    assert_eq!(
        t.feed_head(MAX_CHUNK, b"\xfe\x00").unwrap(),
        TrackerEvent::Continue
    );
    assert_eq!(
        t.feed_head(3, b"\xfe\x00\x00").unwrap(),
        TrackerEvent::Continue
    );
    assert_eq!(
        done(t.feed(&eof(AUTOCOMMIT)).unwrap()).status,
        Some(AUTOCOMMIT)
    );
}

#[test]
fn packets_that_must_be_read_cannot_be_prefixes() {
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    assert_eq!(
        t.feed_head(100, b"\x00\x00"),
        Err(ProtocolError::TooLarge {
            what: "response packet head",
            len: 100,
            max: 2
        })
    );
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    assert_eq!(
        t.feed_head(MAX_CHUNK, &[0; 16]),
        Err(ProtocolError::TooLarge {
            what: "response packet head",
            len: MAX_CHUNK,
            max: 16
        })
    );
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    let big_ok = vec![0u8; MAX_CHUNK];
    assert_eq!(
        t.feed(&big_ok),
        Err(ProtocolError::Unsupported("split packet outside a row"))
    );
}

#[test]
fn field_list_ends_at_eof_or_err() {
    let mut t = ResponseTracker::new(COM_FIELD_LIST, CLASSIC);
    done(run(
        &mut t,
        &[column_def("id"), column_def("name"), eof(AUTOCOMMIT)],
    ));
    let mut t = ResponseTracker::new(COM_FIELD_LIST, MODERN);
    done(run(&mut t, &[column_def("id"), ok_as_eof(AUTOCOMMIT)]));
    let mut t = ResponseTracker::new(COM_FIELD_LIST, CLASSIC);
    assert!(
        done(t.feed(&err(1146, "no table")).unwrap())
            .error
            .is_some()
    );
}

#[test]
fn statistics_is_one_raw_packet() {
    let mut t = ResponseTracker::new(COM_STATISTICS, CLASSIC);
    let end = done(t.feed(b"Uptime: 5  Threads: 1  Questions: 2").unwrap());
    assert_eq!(end, ResponseEnd::default());
}

#[test]
fn simple_commands_end_with_ok_err_or_old_eof() {
    for command in [
        COM_PING,
        COM_INIT_DB,
        COM_RESET_CONNECTION,
        COM_STMT_RESET,
        COM_SET_OPTION,
    ] {
        let mut t = ResponseTracker::new(command, CLASSIC);
        assert_eq!(
            done(t.feed(&ok_status(AUTOCOMMIT)).unwrap()).status,
            Some(AUTOCOMMIT)
        );
    }
    let mut t = ResponseTracker::new(COM_SET_OPTION, CLASSIC);
    assert_eq!(
        done(t.feed(&eof(AUTOCOMMIT)).unwrap()).status,
        Some(AUTOCOMMIT)
    );
    let mut t = ResponseTracker::new(COM_SET_OPTION, MODERN);
    assert_eq!(
        done(t.feed(&ok_as_eof(AUTOCOMMIT)).unwrap()).status,
        Some(AUTOCOMMIT)
    );
    let mut t = ResponseTracker::new(COM_INIT_DB, CLASSIC);
    assert_eq!(
        done(t.feed(&err(1049, "Unknown database")).unwrap())
            .error
            .unwrap()
            .code,
        1049
    );
    let mut t = ResponseTracker::new(COM_PING, CLASSIC);
    assert!(matches!(
        t.feed(b"\x01"),
        Err(ProtocolError::Unexpected { header: 1, .. })
    ));
}

#[test]
fn init_db_reports_the_schema_change() {
    let changed = OkPacket {
        status: AUTOCOMMIT,
        session_state_changes: vec![SessionStateChange::Schema("shop".into())],
        ..OkPacket::default()
    };
    let mut t = ResponseTracker::new(COM_INIT_DB, MODERN);
    let end = done(t.feed(&ok(changed, MODERN)).unwrap());
    assert_eq!(
        end.session_state_changes,
        vec![SessionStateChange::Schema("shop".into())]
    );
    assert!(end.state_changed);
}

#[test]
fn commands_without_a_response() {
    for command in [COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT] {
        let mut t = ResponseTracker::new(command, CLASSIC);
        assert!(!t.expects_response());
        assert!(t.is_done());
        assert!(t.feed(&ok_status(0)).is_err());
    }
    assert!(ResponseTracker::new(COM_QUERY, CLASSIC).expects_response());
}

#[test]
fn unsupported_commands_are_flagged() {
    let mut t = ResponseTracker::new(COM_BINLOG_DUMP, CLASSIC);
    assert!(!t.is_supported());
    assert!(t.feed(&ok_status(0)).is_err());
    assert!(ResponseTracker::new(COM_QUERY, CLASSIC).is_supported());
}

#[test]
fn change_user_hands_over_on_auth_switch() {
    let mut t = ResponseTracker::new(COM_CHANGE_USER, CLASSIC);
    assert_eq!(
        t.feed(b"\xfemysql_native_password\x00abcdefghijklmnopqrst\x00")
            .unwrap(),
        TrackerEvent::NeedsAuthExchange
    );
    assert!(t.is_done());
    let mut t = ResponseTracker::new(COM_CHANGE_USER, CLASSIC);
    done(t.feed(&ok_status(AUTOCOMMIT)).unwrap());
}

#[test]
fn packets_after_the_end_are_errors() {
    let mut t = ResponseTracker::new(COM_PING, CLASSIC);
    done(t.feed(&ok_status(0)).unwrap());
    assert_eq!(
        t.feed(&ok_status(0)),
        Err(ProtocolError::Unexpected {
            context: "after the end of the response",
            header: 0
        })
    );
}

#[test]
fn malformed_responses_are_errors() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"\x00", ProtocolError::Malformed("OK affected rows")),
        (
            b"\x00\x00\x00\x02\x00",
            ProtocolError::Malformed("OK warnings"),
        ),
        (b"\xfc\x01", ProtocolError::Malformed("column count")),
        (
            b"\xfe\x00\x00\x02\x00",
            ProtocolError::Unexpected {
                context: "in the response",
                header: 0xfe,
            },
        ),
        (b"", ProtocolError::Malformed("empty response packet")),
        (b"\xff\x01", ProtocolError::Malformed("ERR code")),
    ];
    for (payload, expected) in cases {
        let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
        assert_eq!(t.feed(payload).as_ref(), Err(expected), "{payload:02x?}");
    }
    let mut t = ResponseTracker::new(COM_QUERY, CLASSIC);
    run(&mut t, &[column_count(1), column_def("x")]);
    assert_eq!(
        t.feed(b"\x03def"),
        Err(ProtocolError::Malformed("EOF packet"))
    );
}
