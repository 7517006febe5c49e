//! Responses captured from MariaDB 10.11.19 (PyMySQL session over the unix socket, raw
//! packets read until the server went quiet), fed to the tracker: every packet but the last
//! must be `Continue`, the last `Done`. "classic" negotiated neither `CLIENT_DEPRECATE_EOF` nor
//! `CLIENT_SESSION_TRACK`; "modern" negotiated both. Session tracking was switched on by the
//! `track_on` statement in both sessions.

use super::*;
use crate::mysql::protocol::capabilities::*;
use crate::mysql::protocol::test_util::hex;

const CLASSIC_CAPS: Capabilities = Capabilities(0x3ba205);
const MODERN_CAPS: Capabilities = Capabilities(0x1bba205);

/// (name, command, packets as hex)
const CLASSIC: &[(&str, u8, &[&str])] = &[
    (
        "select_1_2",
        COM_QUERY,
        &[
            "02",
            "036465660000000131000c3f0001000000038100000000",
            "036465660000000132000c3f0001000000038100000000",
            "fe00000200",
            "01310132",
            "fe00000200",
        ],
    ),
    ("track_on", COM_QUERY, &["00000002000000"]),
    ("set_time_zone", COM_QUERY, &["00000002000000"]),
    (
        "multi",
        COM_QUERY,
        &[
            "0000000a000000",
            "01",
            "03646566000000017801780c3f0002000000030100000000",
            "fe00002a00",
            "0131",
            "0132",
            "fe00002a00",
            "00000002000000",
        ],
    ),
    ("begin", COM_QUERY, &["00000003000000"]),
    (
        "err",
        COM_QUERY,
        &[
            "ff7a042334325330325461626c6520276d7973716c2e6e6f6e6578697374656e745f7461626c655f78797a2720646f65736e2774206578697374",
        ],
    ),
    ("commit", COM_QUERY, &["00000002000000"]),
    ("ping", COM_PING, &["00000002000000"]),
    (
        "prepare",
        COM_STMT_PREPARE,
        &[
            "000100000002000200000000",
            "03646566000000013f000c3f0000000000068000000000",
            "03646566000000013f000c3f0000000000068000000000",
            "fe00000200",
            "03646566000000013f000c3f0000000000068000000000",
            "03646566056d7973716c04757365720475736572045573657204557365720c2d0000020000fe8340000000",
            "fe00000200",
        ],
    ),
    ("init_db", COM_INIT_DB, &["00000002000000"]),
    ("set_option", COM_SET_OPTION, &["fe00000240"]),
    (
        "field_list",
        COM_FIELD_LIST,
        &[
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279290e434f4c4c4154494f4e5f4e414d450e434f4c4c4154494f4e5f4e414d450c2d0000010000fd011000000000",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f7261727929124348415241435445525f5345545f4e414d45124348415241435445525f5345545f4e414d450c2d0080000000fd011000000000",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279291346554c4c5f434f4c4c4154494f4e5f4e414d451346554c4c5f434f4c4c4154494f4e5f4e414d450c2d0000010000fd011000000000",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279290249440249440c3f000b0000000801100000000130",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279290a49535f44454641554c540a49535f44454641554c540c2d000c000000fd011000000000",
            "fe00000240",
        ],
    ),
    (
        "statistics",
        COM_STATISTICS,
        &[
            "557074696d653a20313033362020546872656164733a203120205175657374696f6e733a2033382020536c6f7720717565726965733a203020204f70656e733a20323020204f70656e207461626c65733a20313320205175657269657320706572207365636f6e64206176673a20302e303336",
        ],
    ),
];

/// (name, command, packets as hex)
const MODERN: &[(&str, u8, &[&str])] = &[
    (
        "select_1_2",
        COM_QUERY,
        &[
            "02",
            "036465660000000131000c3f0001000000038100000000",
            "036465660000000132000c3f0001000000038100000000",
            "01310132",
            "fe000002000000",
        ],
    ),
    (
        "track_on",
        COM_QUERY,
        &[
            "00000002400000009200211e73657373696f6e5f747261636b5f73797374656d5f7661726961626c6573012a00181473657373696f6e5f747261636b5f736368656d61024f4e001e1a73657373696f6e5f747261636b5f73746174655f6368616e6765024f4e00251e73657373696f6e5f747261636b5f7472616e73616374696f6e5f696e666f0553544154450201310509085f5f5f5f5f5f5f5f",
        ],
    ),
    (
        "set_time_zone",
        COM_QUERY,
        &["00000002400000001600110974696d655f7a6f6e65062b30313a3030020131"],
    ),
    (
        "multi",
        COM_QUERY,
        &[
            "0000000a4000000003020131",
            "01",
            "03646566000000017801780c3f0002000000030100000000",
            "0131",
            "0132",
            "fe00002a000000",
            "00000002400000000b0106056d7973716c020131",
        ],
    ),
    (
        "begin",
        COM_QUERY,
        &["00000003400000000b050908545f5f5f5f5f5f5f"],
    ),
    (
        "err",
        COM_QUERY,
        &[
            "ff7a042334325330325461626c6520276d7973716c2e6e6f6e6578697374656e745f7461626c655f78797a2720646f65736e2774206578697374",
        ],
    ),
    (
        "commit",
        COM_QUERY,
        &["00000002400000000b0509085f5f5f5f5f5f5f5f"],
    ),
    ("ping", COM_PING, &["00000002000000"]),
    (
        "prepare",
        COM_STMT_PREPARE,
        &[
            "000100000002000200000000",
            "03646566000000013f000c3f0000000000068000000000",
            "03646566000000013f000c3f0000000000068000000000",
            "03646566000000013f000c3f0000000000068000000000",
            "03646566056d7973716c04757365720475736572045573657204557365720c2d0000020000fe8340000000",
        ],
    ),
    (
        "init_db",
        COM_INIT_DB,
        &["000000024000000018011312696e666f726d6174696f6e5f736368656d61020131"],
    ),
    ("set_option", COM_SET_OPTION, &["fe000002000000"]),
    (
        "field_list",
        COM_FIELD_LIST,
        &[
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279290e434f4c4c4154494f4e5f4e414d450e434f4c4c4154494f4e5f4e414d450c2d0000010000fd011000000000",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f7261727929124348415241435445525f5345545f4e414d45124348415241435445525f5345545f4e414d450c2d0080000000fd011000000000",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279291346554c4c5f434f4c4c4154494f4e5f4e414d451346554c4c5f434f4c4c4154494f4e5f4e414d450c2d0000010000fd011000000000",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279290249440249440c3f000b0000000801100000000130",
            "0364656612696e666f726d6174696f6e5f736368656d6125434f4c4c4154494f4e5f4348415241435445525f5345545f4150504c49434142494c4954590b2874656d706f72617279290a49535f44454641554c540a49535f44454641554c540c2d000c000000fd011000000000",
            "fe000002000000",
        ],
    ),
    (
        "statistics",
        COM_STATISTICS,
        &[
            "557074696d653a20313034322020546872656164733a203220205175657374696f6e733a2035322020536c6f7720717565726965733a203020204f70656e733a20323020204f70656e207461626c65733a20313320205175657269657320706572207365636f6e64206176673a20302e303439",
        ],
    ),
];

fn replay(caps: Capabilities, captures: &[(&str, u8, &[&str])]) -> Vec<(String, ResponseEnd)> {
    let mut ends = Vec::new();
    for &(name, command, packets) in captures {
        let mut t = ResponseTracker::new(command, caps);
        let (last, init) = packets.split_last().unwrap();
        for p in init {
            assert_eq!(
                t.feed(&hex(p)).unwrap(),
                TrackerEvent::Continue,
                "{name}: {p}"
            );
        }
        match t.feed(&hex(last)).unwrap() {
            TrackerEvent::Done(end) => ends.push((name.to_owned(), end)),
            other => panic!("{name}: last packet gave {other:?}"),
        }
    }
    ends
}

fn end<'a>(ends: &'a [(String, ResponseEnd)], name: &str) -> &'a ResponseEnd {
    &ends.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn classic_session_responses_end_where_mariadb_ends_them() {
    let ends = replay(CLASSIC_CAPS, CLASSIC);
    assert_eq!(
        end(&ends, "select_1_2").status,
        Some(SERVER_STATUS_AUTOCOMMIT)
    );
    assert_eq!(
        end(&ends, "begin").status.unwrap() & SERVER_STATUS_IN_TRANS,
        SERVER_STATUS_IN_TRANS
    );
    assert_eq!(end(&ends, "err").error.as_ref().unwrap().code, 1146);
    assert_eq!(end(&ends, "prepare").prepared.unwrap().params, 2);
    // Without CLIENT_SESSION_TRACK no state info arrives, whatever the server tracks.
    assert!(ends.iter().all(|(_, e)| e.session_state_changes.is_empty()));
}

#[test]
fn modern_session_responses_carry_session_state() {
    let ends = replay(MODERN_CAPS, MODERN);
    assert_eq!(end(&ends, "select_1_2").ok, Some(OkSummary::default()));
    assert_eq!(
        end(&ends, "set_time_zone").session_state_changes,
        vec![
            SessionStateChange::SystemVariable {
                name: "time_zone".into(),
                value: "+01:00".into()
            },
            SessionStateChange::StateChanged(true),
        ]
    );
    let multi = end(&ends, "multi");
    assert!(
        multi
            .session_state_changes
            .contains(&SessionStateChange::StateChanged(true))
    );
    assert!(
        multi
            .session_state_changes
            .contains(&SessionStateChange::Schema("mysql".into()))
    );
    assert_eq!(
        end(&ends, "begin").session_state_changes,
        vec![SessionStateChange::TransactionState("T_______".into())]
    );
    assert_eq!(
        end(&ends, "commit").session_state_changes,
        vec![SessionStateChange::TransactionState("________".into())]
    );
    assert!(
        end(&ends, "init_db")
            .session_state_changes
            .contains(&SessionStateChange::Schema("information_schema".into()))
    );
    assert_eq!(end(&ends, "statistics").status, None);
}
