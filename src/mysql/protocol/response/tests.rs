use super::*;
use crate::mysql::protocol::capabilities::*;

const CAPS41: Capabilities = Capabilities(CLIENT_PROTOCOL_41);
const TRACK: Capabilities = Capabilities(CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK);

#[test]
fn ok_from_the_docs() {
    // MySQL docs, OK_Packet: "07 00 00 02 00 00 00 02 00 00 00" (payload after the header).
    let payload = b"\x00\x00\x00\x02\x00\x00\x00";
    let ok = OkPacket::decode(payload, CAPS41).unwrap();
    assert_eq!(
        ok,
        OkPacket {
            status: SERVER_STATUS_AUTOCOMMIT,
            ..OkPacket::default()
        }
    );
    let mut out = BytesMut::new();
    ok.encode(&mut out, CAPS41);
    assert_eq!(&out[..], payload);
    assert!(is_ok(payload, CAPS41));
}

#[test]
fn ok_with_info_without_session_track() {
    // "Rows matched: 1  Changed: 1  Warnings: 0" after an UPDATE: info is string<EOF>.
    let ok = OkPacket {
        affected_rows: 1,
        last_insert_id: 300,
        status: SERVER_STATUS_AUTOCOMMIT,
        warnings: 0,
        info: b"Rows matched: 1  Changed: 1  Warnings: 0".to_vec(),
        session_state_changes: vec![],
    };
    let mut out = BytesMut::new();
    ok.encode(&mut out, CAPS41);
    assert_eq!(&out[..7], b"\x00\x01\xfc\x2c\x01\x02\x00");
    assert_eq!(&out[9..], &ok.info[..]);
    assert_eq!(OkPacket::decode(&out, CAPS41).unwrap(), ok);
}

#[test]
fn ok_with_session_track_and_no_info_is_short() {
    // With CLIENT_SESSION_TRACK the server omits the info lenenc entirely when it is empty.
    let ok = OkPacket {
        status: SERVER_STATUS_AUTOCOMMIT,
        ..OkPacket::default()
    };
    let mut out = BytesMut::new();
    ok.encode(&mut out, TRACK);
    assert_eq!(&out[..], b"\x00\x00\x00\x02\x00\x00\x00");
    assert_eq!(OkPacket::decode(&out, TRACK).unwrap(), ok);
}

#[test]
fn ok_with_session_state_changes_captured_from_mariadb() {
    // MariaDB 10.11's OK after `SET time_zone='+01:00'` with session_track_system_variables='*'
    // and session_track_state_change=ON: empty info, then the variable and the state flag.
    let payload = crate::mysql::protocol::test_util::hex(
        "00 00 00 02 40 00 00 00 16 00 11 09 74 69 6d 65 5f 7a 6f 6e 65 06 2b 30 31 3a 30 30
         02 01 31",
    );
    let ok = OkPacket::decode(&payload, TRACK).unwrap();
    assert_eq!(
        ok.status,
        SERVER_STATUS_AUTOCOMMIT | SERVER_SESSION_STATE_CHANGED
    );
    assert_eq!(ok.info, b"");
    assert_eq!(
        ok.session_state_changes,
        vec![
            SessionStateChange::SystemVariable {
                name: "time_zone".into(),
                value: "+01:00".into()
            },
            SessionStateChange::StateChanged(true),
        ]
    );
    let mut out = BytesMut::new();
    ok.encode(&mut out, TRACK);
    assert_eq!(&out[..], &payload[..]);
}

#[test]
fn transaction_state_captured_from_mariadb() {
    // After BEGIN with session_track_transaction_info='STATE'.
    let payload = b"\x00\x00\x00\x03\x40\x00\x00\x00\x0b\x05\x09\x08T_______";
    let ok = OkPacket::decode(payload, TRACK).unwrap();
    assert_eq!(
        ok.session_state_changes,
        vec![SessionStateChange::TransactionState("T_______".into())]
    );
    let mut out = BytesMut::new();
    ok.encode(&mut out, TRACK);
    assert_eq!(&out[..], payload);
}

#[test]
fn every_session_state_kind_round_trips() {
    let ok = OkPacket {
        affected_rows: 3,
        last_insert_id: 70000,
        status: SERVER_STATUS_IN_TRANS,
        warnings: 2,
        info: b"info".to_vec(),
        session_state_changes: vec![
            SessionStateChange::SystemVariable {
                name: "autocommit".into(),
                value: "OFF".into(),
            },
            SessionStateChange::Schema("app".into()),
            SessionStateChange::StateChanged(false),
            SessionStateChange::Gtids(b"\x00\x0a0-1-100".to_vec()),
            SessionStateChange::TransactionCharacteristics("START TRANSACTION;".into()),
            SessionStateChange::TransactionState("T_____S_".into()),
            SessionStateChange::Other {
                kind: 9,
                data: b"\x01x".to_vec(),
            },
        ],
    };
    for caps in [TRACK, TRACK.with(CLIENT_DEPRECATE_EOF)] {
        let mut out = BytesMut::new();
        ok.encode(&mut out, caps);
        let back = OkPacket::decode(&out, caps).unwrap();
        assert_eq!(back.status, ok.status | SERVER_SESSION_STATE_CHANGED);
        assert_eq!(back.session_state_changes, ok.session_state_changes);
        assert_eq!(
            (back.affected_rows, back.last_insert_id, back.warnings),
            (3, 70000, 2)
        );
        assert_eq!(back.info, b"info");
    }
}

#[test]
fn non_utf8_state_is_kept_raw() {
    let data = b"\x02\x01\xff\x01x"; // a system variable whose name is not UTF-8
    let change = SessionStateChange::decode(SESSION_TRACK_SYSTEM_VARIABLES, data).unwrap();
    assert_eq!(
        change,
        SessionStateChange::Other {
            kind: 0,
            data: data.to_vec()
        }
    );
}

#[test]
fn ok_state_flag_is_not_sent_without_tracking() {
    let ok = OkPacket {
        status: SERVER_SESSION_STATE_CHANGED,
        session_state_changes: vec![SessionStateChange::StateChanged(true)],
        ..OkPacket::default()
    };
    let mut out = BytesMut::new();
    ok.encode(&mut out, CAPS41);
    assert_eq!(&out[..], b"\x00\x00\x00\x00\x00\x00\x00");
}

#[test]
fn ok_as_eof_for_deprecate_eof_clients() {
    let caps = CAPS41.with(CLIENT_DEPRECATE_EOF);
    let ok = OkPacket {
        status: SERVER_STATUS_AUTOCOMMIT,
        warnings: 1,
        ..OkPacket::default()
    };
    let mut out = BytesMut::new();
    ok.encode_as_eof(&mut out, caps);
    assert_eq!(&out[..], b"\xfe\x00\x00\x02\x00\x01\x00");
    assert!(is_ok(&out, caps));
    assert!(!is_eof(&out, caps));
    assert!(is_result_terminator(&out, caps));
    assert_eq!(OkPacket::decode(&out, caps).unwrap(), ok);
}

#[test]
fn truncated_ok_names_the_field() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "OK header"),
        (b"\x00", "OK affected rows"),
        (b"\x00\x00", "OK last insert id"),
        (b"\x00\x00\x00\x02", "OK status"),
        (b"\x00\x00\x00\x02\x00\x00", "OK warnings"),
        (b"\x00\x00\x00\x02\x00\x00\x00\x05ab", "OK info"),
        (
            b"\x00\x00\x00\x02\x40\x00\x00\x00\x05\x00\x03",
            "OK session state",
        ),
        (
            b"\x00\x00\x00\x02\x40\x00\x00\x00\x02\x00\x03",
            "session-track data",
        ),
        (
            b"\x00\x00\x00\x02\x40\x00\x00\x00\x03\x01\x01\x05",
            "session-track schema",
        ),
        (b"\x01\x00\x00\x02\x00\x00\x00", "OK header"),
    ];
    for (payload, what) in cases {
        assert_eq!(
            OkPacket::decode(payload, TRACK),
            Err(ProtocolError::Malformed(what)),
            "{payload:?}"
        );
    }
}

#[test]
fn err_from_the_docs() {
    // MySQL docs, ERR_Packet: "17 00 00 01 ff 48 04 23 48 59 30 30 30 4e 6f 20 74 61 62 6c 65
    // 73 20 75 73 65 64".
    let payload = b"\xff\x48\x04\x23\x48\x59\x30\x30\x30No tables used";
    let err = ErrPacket::decode(payload).unwrap();
    assert_eq!(err, ErrPacket::new(1096, b"HY000", "No tables used"));
    let mut out = BytesMut::new();
    err.encode(&mut out, CAPS41);
    assert_eq!(&out[..], payload);
    assert!(is_err(payload));
}

#[test]
fn err_without_sql_state() {
    let err = ErrPacket::decode(b"\xff\x15\x04Access denied").unwrap();
    assert_eq!(err, ErrPacket::new(1045, b"HY000", "Access denied"));
    let mut out = BytesMut::new();
    ErrPacket::new(1045, b"28000", "x").encode(&mut out, Capabilities(0));
    assert_eq!(&out[..], b"\xff\x15\x04x");
    assert_eq!(
        ErrPacket::decode(b"\xff\x15"),
        Err(ProtocolError::Malformed("ERR code"))
    );
    assert_eq!(
        ErrPacket::decode(b"\xff\x15\x04#HY"),
        Err(ProtocolError::Malformed("ERR sql state"))
    );
    assert_eq!(
        ErrPacket::decode(b"\x00"),
        Err(ProtocolError::Malformed("ERR header"))
    );
}

#[test]
fn progress_report_is_recognised() {
    assert!(ErrPacket::is_progress_report(
        b"\xff\xff\xff\x01\x01\x02\x10\x27\x00\x00"
    ));
    assert!(!ErrPacket::is_progress_report(b"\xff\x15\x04#28000x"));
    assert!(!ErrPacket::is_progress_report(b"\xff\xff"));
}

#[test]
fn eof_from_the_docs() {
    // MySQL docs, EOF_Packet: "05 00 00 05 fe 00 00 02 00".
    let payload = b"\xfe\x00\x00\x02\x00";
    let eof = EofPacket::decode(payload, CAPS41).unwrap();
    assert_eq!(
        eof,
        EofPacket {
            warnings: 0,
            status: SERVER_STATUS_AUTOCOMMIT
        }
    );
    let mut out = BytesMut::new();
    eof.encode(&mut out, CAPS41);
    assert_eq!(&out[..], payload);
    assert!(is_eof(payload, CAPS41));
    assert!(!is_ok(payload, CAPS41));
    assert!(is_result_terminator(payload, CAPS41));
    assert_eq!(
        EofPacket::decode(b"\xfe\x00", CAPS41),
        Err(ProtocolError::Malformed("EOF warnings"))
    );
}

#[test]
fn a_long_fe_packet_is_a_row_not_an_eof() {
    let mut row = vec![0xFE; 9];
    assert!(!is_eof(&row, CAPS41));
    assert!(!is_result_terminator(&row, CAPS41));
    row.resize(MAX_CHUNK, 0);
    let deprecate = CAPS41.with(CLIENT_DEPRECATE_EOF);
    assert!(!is_ok(&row, deprecate));
    assert!(!is_result_terminator(&row, deprecate));
}
