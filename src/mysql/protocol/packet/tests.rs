use super::*;

#[test]
fn decodes_com_query_packet_from_the_docs() {
    // "select @@version_comment limit 1", sequence 0 (MySQL docs, COM_QUERY example).
    let mut wire = vec![0x21, 0x00, 0x00, 0x00, 0x03];
    wire.extend_from_slice(b"select @@version_comment limit 1");
    let frame = decode_packet(&wire, 1 << 24).unwrap().unwrap();
    assert_eq!(frame.seq, 0);
    assert_eq!(&wire[frame.payload.clone()], &wire[4..]);
    assert_eq!(frame.wire_len(), wire.len());
}

#[test]
fn incomplete_packets_need_more() {
    assert_eq!(decode_packet(&[], 100).unwrap(), None);
    assert_eq!(decode_packet(&[1, 0, 0], 100).unwrap(), None);
    assert_eq!(decode_packet(&[2, 0, 0, 7, 0xAA], 100).unwrap(), None);
    let f = decode_packet(&[2, 0, 0, 7, 0xAA, 0xBB, 0xCC], 100)
        .unwrap()
        .unwrap();
    assert_eq!((f.seq, f.payload), (7, 4..6));
}

#[test]
fn oversized_declared_length_is_rejected_before_buffering() {
    let err = decode_packet(&[0xFF, 0xFF, 0xFF, 0], 1024).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::TooLarge {
            what: "packet",
            len: MAX_CHUNK,
            max: 1024
        }
    );
}

#[test]
fn empty_payload_is_a_packet() {
    let f = decode_packet(&[0, 0, 0, 3], 10).unwrap().unwrap();
    assert_eq!((f.seq, f.payload), (3, 4..4));
}

#[test]
fn write_packet_small() {
    let mut out = BytesMut::new();
    assert_eq!(write_packet(&mut out, 5, b"\x0e"), 6);
    assert_eq!(&out[..], b"\x01\x00\x00\x05\x0e");
}

fn split_physical(mut wire: &[u8]) -> Vec<(u8, usize)> {
    let mut packets = Vec::new();
    while let Some(f) = decode_packet(wire, MAX_CHUNK).unwrap() {
        packets.push((f.seq, f.payload.len()));
        wire = &wire[f.wire_len()..];
    }
    assert!(wire.is_empty());
    packets
}

#[test]
fn write_packet_splits_large_payloads() {
    let payload = vec![7u8; MAX_CHUNK + 10];
    let mut out = BytesMut::new();
    assert_eq!(write_packet(&mut out, 0, &payload), 2);
    assert_eq!(split_physical(&out), vec![(0, MAX_CHUNK), (1, 10)]);
}

#[test]
fn exact_multiple_gets_an_empty_trailer() {
    let payload = vec![1u8; MAX_CHUNK];
    let mut out = BytesMut::new();
    assert_eq!(write_packet(&mut out, 254, &payload), 0);
    assert_eq!(split_physical(&out), vec![(254, MAX_CHUNK), (255, 0)]);
}

#[test]
fn packet_writer_patches_header_in_place() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    let mut w = PacketWriter::new(&mut out, 2);
    w.buf().put_u8(0x00);
    put_lenenc_int(w.buf(), 300);
    assert_eq!(w.payload_len(), 4);
    assert_eq!(w.finish(), 3);
    assert_eq!(&out[..], b"prefix\x04\x00\x00\x02\x00\xfc\x2c\x01");
}

#[test]
fn packet_writer_splits_oversized_payload() {
    let mut out = BytesMut::new();
    let mut w = PacketWriter::new(&mut out, 0);
    w.buf().put_bytes(9, MAX_CHUNK * 2);
    assert_eq!(w.finish(), 3);
    assert_eq!(
        split_physical(&out),
        vec![(0, MAX_CHUNK), (1, MAX_CHUNK), (2, 0)]
    );
}

#[test]
fn lenenc_int_boundaries_round_trip() {
    let cases: &[(u64, &[u8])] = &[
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x1_0000, b"\xfd\x00\x00\x01"),
        (0xFF_FFFF, b"\xfd\xff\xff\xff"),
        (0x100_0000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (u64::MAX, b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff"),
    ];
    for &(v, wire) in cases {
        let mut out = BytesMut::new();
        put_lenenc_int(&mut out, v);
        assert_eq!(&out[..], wire, "{v}");
        assert_eq!(lenenc_int_len(v), wire.len());
        let mut r = Reader::new(wire);
        assert_eq!(r.lenenc_int("n").unwrap(), v);
        assert!(r.is_empty());
    }
}

#[test]
fn lenenc_rejects_null_err_marker_and_truncation() {
    for bad in [
        &b"\xfb"[..],
        b"\xff",
        b"",
        b"\xfc\x01",
        b"\xfd\x01\x02",
        b"\xfe\x01",
    ] {
        assert_eq!(
            Reader::new(bad).lenenc_int("n"),
            Err(ProtocolError::Malformed("n")),
            "{bad:?}"
        );
    }
}

#[test]
fn lenenc_string_length_is_checked() {
    let mut r = Reader::new(b"\x03abcd");
    assert_eq!(r.lenenc_bytes("s").unwrap(), b"abc");
    assert_eq!(r.rest(), b"d");
    assert_eq!(
        Reader::new(b"\x05abc").lenenc_bytes("s"),
        Err(ProtocolError::Malformed("s"))
    );
    let huge = b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff";
    assert_eq!(
        Reader::new(huge).lenenc_bytes("s"),
        Err(ProtocolError::Malformed("s"))
    );
    let mut out = BytesMut::new();
    put_lenenc_bytes(&mut out, b"abc");
    assert_eq!(&out[..], b"\x03abc");
}

#[test]
fn nul_terminated_strings() {
    let mut r = Reader::new(b"root\0rest");
    assert_eq!(r.nul_bytes("user").unwrap(), b"root");
    assert_eq!(r.nul_bytes("db"), Err(ProtocolError::Malformed("db")));
    assert_eq!(r.nul_or_rest(), b"rest");
    let mut out = BytesMut::new();
    put_nul_bytes(&mut out, b"x");
    assert_eq!(&out[..], b"x\0");
}

#[test]
fn fixed_ints_are_little_endian_and_checked() {
    let mut r = Reader::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(r.u16("a").unwrap(), 0x0201);
    assert_eq!(r.u24("b").unwrap(), 0x050403);
    assert_eq!(r.u32("c").unwrap(), 0x0908_0706);
    assert_eq!(r.u32("d"), Err(ProtocolError::Malformed("d")));
    assert_eq!(r.u8("e").unwrap(), 10);
    assert_eq!(r.u64("f"), Err(ProtocolError::Malformed("f")));
}
