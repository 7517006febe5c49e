//! Deterministic stand-in for the fuzz targets (which need nightly tooling): random and mutated
//! inputs through every decoder, with the same no-panic and round-trip properties.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Capabilities;
use super::command::ClientCommand;
use super::handshake::{AuthReply, HandshakeResponse41, HandshakeV10, SslRequest};
use super::packet::MAX_CHUNK;
use super::response::{EofPacket, ErrPacket, OkPacket, SessionStateChange};
use super::sqlscan;
use super::test_util::hex;
use super::tracker::{ResponseTracker, TrackerEvent};

fn seeds() -> Vec<Vec<u8>> {
    let mut greeting = BytesMut::new();
    HandshakeV10 {
        server_version: "5.5.5-10.11.19-MariaDB".into(),
        connection_id: 7,
        nonce: *b"abcdefghijklmnopqrst",
        capabilities: Capabilities(0x0000_001d_f7fe_f7fe),
        charset: 45,
        status: 2,
        auth_plugin: "mysql_native_password".into(),
    }
    .encode(&mut greeting);
    let mut ok = BytesMut::new();
    OkPacket {
        affected_rows: 1,
        status: 0x4002,
        info: b"x".to_vec(),
        session_state_changes: vec![
            SessionStateChange::Schema("db".into()),
            SessionStateChange::StateChanged(true),
        ],
        ..OkPacket::default()
    }
    .encode(&mut ok, Capabilities(1 << 9 | 1 << 23));
    vec![
        greeting.to_vec(),
        ok.to_vec(),
        hex(
            "8d a6 0f 00 00 00 00 01 08 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
             00 00 00 00 70 61 6d 00 14 ab 09 ee f6 bc b1 32 3e 61 14 38 65 c0 99 1d 95 7d 75 d4
             47 74 65 73 74 00 6d 79 73 71 6c 5f 6e 61 74 69 76 65 5f 70 61 73 73 77 6f 72 64 00",
        ),
        b"\x03\x01\x01\x00\x01\xfe\x00\x01a\x03xyzSELECT 1".to_vec(),
        b"SELECT /*!40101 @@x */, 'a\\'b', `c` -- d\n FROM t WHERE GET_LOCK ('x')".to_vec(),
    ]
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..4) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            1 => v.truncate(rng.random_range(0..=v.len())),
            2 => {
                let i = rng.random_range(0..=v.len());
                v.insert(i, rng.random());
            }
            _ => v.extend((0..rng.random_range(0..8)).map(|_| rng.random::<u8>())),
        }
    }
    v
}

fn check_decoders(input: &[u8], caps: Capabilities) {
    if let Ok(response) = HandshakeResponse41::decode(input) {
        let mut out = BytesMut::new();
        response.encode(&mut out).unwrap();
        assert_eq!(
            HandshakeResponse41::decode(&out).unwrap(),
            response,
            "{input:02x?}"
        );
    }
    if let Ok(greeting) = HandshakeV10::decode(input) {
        let mut out = BytesMut::new();
        greeting.encode(&mut out);
        assert_eq!(
            HandshakeV10::decode(&out).unwrap(),
            greeting,
            "{input:02x?}"
        );
    }
    if let Ok(ok) = OkPacket::decode(input, caps) {
        let mut out = BytesMut::new();
        ok.encode(&mut out, caps);
        OkPacket::decode(&out, caps).unwrap();
    }
    let _ = SslRequest::decode(input);
    let _ = AuthReply::decode(input, caps);
    let _ = ErrPacket::decode(input);
    let _ = EofPacket::decode(input, caps);
    let _ = ClientCommand::decode(input, caps);
    let _ = sqlscan::first_keyword(input);
    let _ = sqlscan::calls_function(input, "GET_LOCK");
    let _ = sqlscan::is_pure_variable_read(input);
    assert!(sqlscan::mask_literals(input, 20).chars().count() <= 20);
}

fn check_tracker(rng: &mut StdRng, packets: &[Vec<u8>]) {
    let command = *[0x03, 0x16, 0x17, 0x1c, 0x04, 0x09, 0x0e, 0x11, 0x19]
        .get(rng.random_range(0..9))
        .unwrap();
    let caps = Capabilities(rng.random::<u64>() | 1 << 9);
    let mut t = ResponseTracker::new(command, caps);
    let mut ended = false;
    for p in packets {
        let event = if rng.random_range(0..8) == 0 {
            t.feed_head(MAX_CHUNK, &p[..p.len().min(3)])
        } else {
            t.feed(p)
        };
        if ended {
            assert!(event.is_err());
        }
        match event {
            Ok(TrackerEvent::Done(_) | TrackerEvent::NeedsAuthExchange) => ended = true,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn decoders_survive_random_and_mutated_input() {
    let mut rng = StdRng::seed_from_u64(0x71de_0001);
    let seeds = seeds();
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            (0..rng.random_range(0..64))
                .map(|_| rng.random::<u8>())
                .collect()
        } else {
            mutate(&mut rng, &seeds[i % seeds.len()])
        };
        check_decoders(&input, Capabilities(rng.random::<u64>() | 1 << 9));
    }
}

#[test]
fn tracker_survives_random_packet_streams() {
    let mut rng = StdRng::seed_from_u64(0x71de_0002);
    let alphabet: Vec<Vec<u8>> = vec![
        b"\x01".to_vec(),
        b"\x02".to_vec(),
        b"\x03def\x00\x00\x00\x01x\x00\x0c".to_vec(),
        b"\xfe\x00\x00\x02\x00".to_vec(),
        b"\xfe\x00\x00\x0a\x00\x00\x00".to_vec(),
        b"\x00\x00\x00\x02\x00\x00\x00".to_vec(),
        b"\x00\x00\x00\x0a\x40\x00\x00\x00\x03\x02\x01\x31".to_vec(),
        b"\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00".to_vec(),
        b"\xff\x15\x04#28000x".to_vec(),
        b"\xff\xff\xff\x01".to_vec(),
        b"\xfbfile".to_vec(),
        b"\x01\x03".to_vec(),
        vec![],
    ];
    for _ in 0..20_000 {
        let packets: Vec<Vec<u8>> = (0..rng.random_range(1..12))
            .map(|_| {
                let p = &alphabet[rng.random_range(0..alphabet.len())];
                if rng.random_range(0..4) == 0 {
                    mutate(&mut rng, p)
                } else {
                    p.clone()
                }
            })
            .collect();
        check_tracker(&mut rng, &packets);
    }
}
