//! Feeds arbitrary bytes to the MySQL packet framing, the field readers, the client-command
//! decoder and the SQL scanner: none may panic, and framing must account for every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidepool::mysql::protocol::Capabilities;
use tidepool::mysql::protocol::command::ClientCommand;
use tidepool::mysql::protocol::packet::{Reader, decode_packet, write_packet};
use tidepool::mysql::protocol::sqlscan;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    // Framing: consume complete packets, re-encode them, and get the same bytes back.
    let mut rest = input;
    let mut reencoded = bytes::BytesMut::new();
    let mut consumed = 0;
    while let Ok(Some(frame)) = decode_packet(rest, 1 << 16) {
        write_packet(&mut reencoded, frame.seq, &rest[frame.payload.clone()]);
        consumed += frame.wire_len();
        rest = &rest[frame.wire_len()..];
    }
    assert_eq!(&reencoded[..], &input[..consumed]);

    // Field readers on arbitrary input.
    let mut r = Reader::new(input);
    while !r.is_empty() {
        let ok = match r.peek().unwrap_or(0) % 4 {
            0 => r.lenenc_bytes("fuzz").is_ok(),
            1 => r.lenenc_int("fuzz").is_ok(),
            2 => r.nul_bytes("fuzz").is_ok(),
            _ => r.u24("fuzz").is_ok(),
        };
        if !ok {
            break;
        }
    }

    // Commands under the capability set chosen by the seed.
    let caps = Capabilities(u64::from(seed).wrapping_mul(0x0801_0204_8102_0409));
    let _ = ClientCommand::decode(input, caps);

    // The SQL scanner.
    let _ = sqlscan::first_keyword(input);
    let _ = sqlscan::calls_function(input, "GET_LOCK");
    let _ = sqlscan::mentions_keyword(input, "TEMPORARY");
    let _ = sqlscan::is_pure_variable_read(input);
    let masked = sqlscan::mask_literals(input, usize::from(seed));
    assert!(masked.chars().count() <= usize::from(seed));
});
