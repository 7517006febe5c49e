use super::*;
use crate::mysql::protocol::capabilities::*;
use crate::mysql::protocol::test_util::hex;

#[test]
fn greeting_from_the_docs_without_plugin_auth() {
    // MySQL docs, Protocol::HandshakeV10, 5.5.2-m2 (payload after the 4-byte header).
    let payload = hex(
        "0a 35 2e 35 2e 32 2d 6d 32 00 0b 00 00 00 64 76 48 40 49 2d 43 4a 00 ff f7 08 02 00
         00 00 00 00 00 00 00 00 00 00 00 00 00 2a 34 64 7c 63 5a 77 6b 34 5e 5d 3a 00",
    );
    let hs = HandshakeV10::decode(&payload).unwrap();
    assert_eq!(hs.server_version, "5.5.2-m2");
    assert_eq!(hs.connection_id, 11);
    assert_eq!(&hs.nonce, b"dvH@I-CJ*4d|cZwk4^]:");
    assert_eq!(hs.capabilities, Capabilities(0xf7ff));
    assert_eq!((hs.charset, hs.status), (8, SERVER_STATUS_AUTOCOMMIT));
    assert_eq!(hs.auth_plugin, "");
    let mut out = BytesMut::new();
    hs.encode(&mut out);
    assert_eq!(&out[..], &payload[..]);
}

#[test]
fn greeting_from_the_docs_with_plugin_auth() {
    // MySQL docs, Protocol::HandshakeV10, 5.6.4-m7-log.
    let payload = hex(
        "0a 35 2e 36 2e 34 2d 6d 37 2d 6c 6f 67 00 56 0a 00 00 52 42 33 76 7a 26 47 72 00 ff
         ff 08 02 00 0f c0 15 00 00 00 00 00 00 00 00 00 00 2b 79 44 26 2f 5a 5a 33 30 35 5a
         47 00 6d 79 73 71 6c 5f 6e 61 74 69 76 65 5f 70 61 73 73 77 6f 72 64 00",
    );
    let hs = HandshakeV10::decode(&payload).unwrap();
    assert_eq!(hs.server_version, "5.6.4-m7-log");
    assert_eq!(hs.connection_id, 2646);
    assert_eq!(&hs.nonce, b"RB3vz&Gr+yD&/ZZ305ZG");
    assert_eq!(hs.capabilities, Capabilities(0xc00f_ffff));
    assert_eq!(hs.auth_plugin, "mysql_native_password");
    let mut out = BytesMut::new();
    hs.encode(&mut out);
    assert_eq!(&out[..], &payload[..]);
}

fn mariadb_greeting() -> HandshakeV10 {
    HandshakeV10 {
        server_version: "5.5.5-10.11.6-MariaDB".into(),
        connection_id: 42,
        nonce: *b"abcdefghijklmnopqrst",
        // CLIENT_MYSQL clear: the extended capabilities travel in the reserved bytes.
        capabilities: Capabilities(
            0xffff_f7fe
                | MARIADB_CLIENT_PROGRESS
                | MARIADB_CLIENT_STMT_BULK_OPERATIONS
                | MARIADB_CLIENT_EXTENDED_METADATA,
        ),
        charset: 45,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: "mysql_native_password".into(),
    }
}

const GREETING_FIXED: usize = 4 + 8 + 1 + 2 + 1 + 2 + 2;

#[test]
fn mariadb_greeting_round_trips_extended_capabilities() {
    let hs = mariadb_greeting();
    let mut out = BytesMut::new();
    hs.encode(&mut out);
    // nonce length 21, then 6 zero bytes and the extended capabilities (0x0000000d).
    let at = 1 + hs.server_version.len() + 1 + GREETING_FIXED;
    assert_eq!(&out[at..at + 11], b"\x15\0\0\0\0\0\0\x0d\0\0\0");
    // The second nonce part carries its trailing NUL.
    assert_eq!(&out[at + 11..at + 24], b"ijklmnopqrst\0");
    assert_eq!(HandshakeV10::decode(&out).unwrap(), hs);
}

#[test]
fn mysql_greeting_ignores_reserved_bytes() {
    let mut hs = mariadb_greeting();
    hs.capabilities = Capabilities(0xffff_ffff);
    let mut out = BytesMut::new();
    hs.encode(&mut out);
    let at = 1 + hs.server_version.len() + 1 + GREETING_FIXED + 7;
    out[at] = 0xff; // garbage in the reserved bytes must not become capabilities
    assert_eq!(
        HandshakeV10::decode(&out).unwrap().capabilities,
        Capabilities(0xffff_ffff)
    );
}

#[test]
fn truncated_greetings_are_errors_not_panics() {
    let mut out = BytesMut::new();
    mariadb_greeting().encode(&mut out);
    for len in 0..out.len() - 22 {
        assert!(HandshakeV10::decode(&out[..len]).is_err(), "prefix {len}");
    }
    assert!(matches!(
        HandshakeV10::decode(b"\xff\x10\x04Too many connections"),
        Err(ProtocolError::Unexpected { header: 0xff, .. })
    ));
    assert_eq!(
        HandshakeV10::decode(b"\x09"),
        Err(ProtocolError::Unsupported("handshake protocol version"))
    );
}

#[test]
fn handshake_response_from_the_docs() {
    // MySQL docs, Protocol::HandshakeResponse41 example (user "pam", db "test").
    let payload = hex(
        "8d a6 0f 00 00 00 00 01 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
         00 00 00 00 70 61 6d 00 14 ab 09 ee f6 bc b1 32 3e 61 14 38 65 c0 99 1d 95 7d 75 d4
         47 74 65 73 74 00 6d 79 73 71 6c 5f 6e 61 74 69 76 65 5f 70 61 73 73 77 6f 72 64 00",
    );
    let resp = HandshakeResponse41::decode(&payload).unwrap();
    assert_eq!(resp.capabilities, Capabilities(0x000f_a68d));
    assert_eq!((resp.max_packet, resp.charset), (16 * 1024 * 1024, 8));
    assert_eq!(resp.username, "pam");
    assert_eq!(
        resp.auth_response,
        hex("ab 09 ee f6 bc b1 32 3e 61 14 38 65 c0 99 1d 95 7d 75 d4 47")
    );
    assert_eq!(resp.database.as_deref(), Some("test"));
    assert_eq!(resp.auth_plugin.as_deref(), Some("mysql_native_password"));
    assert!(resp.connect_attrs.is_empty());
    let mut out = BytesMut::new();
    resp.encode(&mut out).unwrap();
    assert_eq!(&out[..], &payload[..]);
}

fn pymysql_like_response() -> HandshakeResponse41 {
    HandshakeResponse41 {
        capabilities: Capabilities(
            CLIENT_LONG_PASSWORD
                | CLIENT_PROTOCOL_41
                | CLIENT_SECURE_CONNECTION
                | CLIENT_TRANSACTIONS
                | CLIENT_MULTI_RESULTS
                | CLIENT_PLUGIN_AUTH
                | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
                | CLIENT_CONNECT_ATTRS
                | CLIENT_CONNECT_WITH_DB,
        ),
        max_packet: 16 * 1024 * 1024,
        charset: 45,
        username: "app".into(),
        auth_response: vec![7; 20],
        database: Some("shop".into()),
        auth_plugin: Some("mysql_native_password".into()),
        connect_attrs: vec![
            ("_client_name".into(), "pymysql".into()),
            ("_pid".into(), "4242".into()),
        ],
    }
}

#[test]
fn handshake_response_with_attrs_round_trips() {
    let resp = pymysql_like_response();
    let mut out = BytesMut::new();
    resp.encode(&mut out).unwrap();
    assert_eq!(HandshakeResponse41::decode(&out).unwrap(), resp);
}

#[test]
fn handshake_response_mariadb_extended_caps() {
    let mut resp = pymysql_like_response();
    resp.capabilities = resp
        .capabilities
        .without(CLIENT_MYSQL)
        .with(MARIADB_CLIENT_PROGRESS);
    let mut out = BytesMut::new();
    resp.encode(&mut out).unwrap();
    assert_eq!(&out[28..32], b"\x01\0\0\0");
    assert_eq!(HandshakeResponse41::decode(&out).unwrap(), resp);
}

#[test]
fn handshake_response_without_optional_fields() {
    let mut resp = pymysql_like_response();
    resp.capabilities = resp.capabilities.without(
        CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    );
    resp.database = None;
    resp.connect_attrs.clear();
    let mut out = BytesMut::new();
    resp.encode(&mut out).unwrap();
    assert_eq!(HandshakeResponse41::decode(&out).unwrap(), resp);
}

#[test]
fn flags_without_values_read_as_absent() {
    let mut resp = pymysql_like_response();
    resp.auth_plugin = None;
    resp.database = Some(String::new());
    resp.connect_attrs.clear();
    let mut out = BytesMut::new();
    resp.encode(&mut out).unwrap();
    let without_attrs = &out[..out.len() - 1]; // drop the empty attrs length
    let back = HandshakeResponse41::decode(without_attrs).unwrap();
    assert_eq!((back.database, back.auth_plugin), (None, None));
}

#[test]
fn handshake_response_errors_name_the_field() {
    let mut out = BytesMut::new();
    pymysql_like_response().encode(&mut out).unwrap();
    let malformed = |len: usize| HandshakeResponse41::decode(&out[..len]).unwrap_err();
    assert_eq!(malformed(10), ProtocolError::Malformed("client filler"));
    assert_eq!(malformed(34), ProtocolError::Malformed("username"));
    assert_eq!(malformed(40), ProtocolError::Malformed("auth response"));
    let attrs_len = 1 + (1 + 12 + 1 + 7) + (1 + 4 + 1 + 4);
    assert_eq!(
        malformed(out.len() - attrs_len + 5),
        ProtocolError::Malformed("connect attributes")
    );
    for len in 0..out.len() {
        let _ = HandshakeResponse41::decode(&out[..len]);
    }
    let mut pre41 = out.to_vec();
    pre41[1] &= !0x02; // clear CLIENT_PROTOCOL_41 (bit 9)
    assert_eq!(
        HandshakeResponse41::decode(&pre41),
        Err(ProtocolError::Unsupported("pre-4.1 client"))
    );
}

#[test]
fn secure_connection_auth_response_is_limited_to_255() {
    let mut resp = pymysql_like_response();
    resp.capabilities = resp
        .capabilities
        .without(CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA);
    resp.auth_response = vec![1; 256];
    assert_eq!(
        resp.encode(&mut BytesMut::new()),
        Err(ProtocolError::TooLarge {
            what: "auth response",
            len: 256,
            max: 255
        })
    );
}

#[test]
fn ssl_request() {
    let req = SslRequest {
        capabilities: Capabilities(
            CLIENT_MYSQL | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION,
        ),
        max_packet: 1 << 24,
        charset: 33,
    };
    let mut out = BytesMut::new();
    req.encode(&mut out);
    assert!(SslRequest::is_ssl_request(&out));
    assert_eq!(SslRequest::decode(&out).unwrap(), req);
    let mut full = BytesMut::new();
    pymysql_like_response().encode(&mut full).unwrap();
    assert!(!SslRequest::is_ssl_request(&full));
}

#[test]
fn auth_switch_request() {
    // Protocol::AuthSwitchRequest: plugin name, then the nonce with its NUL.
    let req = AuthSwitchRequest {
        plugin: "caching_sha2_password".into(),
        data: b"01234567890123456789".to_vec(),
    };
    let mut out = BytesMut::new();
    req.encode(&mut out);
    assert_eq!(
        &out[..],
        b"\xfecaching_sha2_password\x0001234567890123456789\x00"
    );
    assert_eq!(AuthSwitchRequest::decode(&out).unwrap(), req);
    assert_eq!(
        AuthSwitchRequest::decode(b"\xfe"),
        Err(ProtocolError::Unsupported("old-password auth switch"))
    );
    assert_eq!(
        AuthSwitchRequest::decode(b"\xfeplugin"),
        Err(ProtocolError::Malformed("auth switch plugin"))
    );
}

#[test]
fn auth_more_data_and_replies() {
    let more = AuthMoreData { data: vec![0x03] };
    let mut out = BytesMut::new();
    more.encode(&mut out);
    assert_eq!(&out[..], b"\x01\x03");
    let caps = Capabilities(CLIENT_PROTOCOL_41);
    assert_eq!(
        AuthReply::decode(&out, caps).unwrap(),
        AuthReply::MoreData(more)
    );
    let ok = AuthReply::decode(b"\x00\x00\x00\x02\x00\x00\x00", caps);
    assert!(matches!(ok, Ok(AuthReply::Ok(_))));
    let err = AuthReply::decode(b"\xff\x15\x04#28000denied", caps);
    assert!(matches!(err, Ok(AuthReply::Err(e)) if e.code == 1045));
    let switch = AuthReply::decode(b"\xfemysql_native_password\x00x\x00", caps);
    assert!(matches!(switch, Ok(AuthReply::Switch(_))));
    assert!(AuthReply::decode(b"", caps).is_err());
    assert!(AuthReply::decode(b"\x07", caps).is_err());
    assert_eq!(
        AuthMoreData::decode(b"\x02"),
        Err(ProtocolError::Malformed("auth more data header"))
    );
}

#[test]
fn greeting_captured_from_mariadb_10_11() {
    let payload = hex(
        "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100130000005c734b5f78
         615b2600fef72d0200ff81150000000000001d0000004a2164555d52637a5e462629006d7973716c5f6e61
         746976655f70617373776f726400",
    );
    let hs = HandshakeV10::decode(&payload).unwrap();
    assert_eq!(hs.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert_eq!(hs.connection_id, 0x13);
    assert_eq!(
        hs.auth_plugin,
        crate::mysql::protocol::auth::MYSQL_NATIVE_PASSWORD
    );
    assert!(hs.capabilities.uses_mariadb_ext());
    assert!(hs.capabilities.contains(
        CLIENT_DEPRECATE_EOF
            | CLIENT_SESSION_TRACK
            | MARIADB_CLIENT_PROGRESS
            | MARIADB_CLIENT_STMT_BULK_OPERATIONS
            | MARIADB_CLIENT_EXTENDED_METADATA
            | MARIADB_CLIENT_CACHE_METADATA
    ));
    assert!(hs.nonce.iter().all(|&b| b != 0));
    let mut out = BytesMut::new();
    hs.encode(&mut out);
    assert_eq!(&out[..], &payload[..]);
}
