//! Feeds arbitrary bytes to every connection-phase decoder: none may panic, and whatever
//! decodes must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidepool::mysql::protocol::Capabilities;
use tidepool::mysql::protocol::handshake::{
    AuthMoreData, AuthReply, AuthSwitchRequest, HandshakeResponse41, HandshakeV10, SslRequest,
};
use tidepool::mysql::protocol::response::{EofPacket, ErrPacket, OkPacket};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, payload)) = data.split_first() else {
        return;
    };
    let caps = Capabilities(u64::from(seed).wrapping_mul(0x0801_0204_8102_0409) | (1 << 9));

    if let Ok(response) = HandshakeResponse41::decode(payload) {
        let mut out = bytes::BytesMut::new();
        response.encode(&mut out).expect("a decoded response re-encodes");
        assert_eq!(HandshakeResponse41::decode(&out).unwrap(), response);
    }
    if let Ok(greeting) = HandshakeV10::decode(payload) {
        let mut out = bytes::BytesMut::new();
        greeting.encode(&mut out);
        assert_eq!(HandshakeV10::decode(&out).unwrap(), greeting);
    }
    let _ = SslRequest::decode(payload);
    let _ = AuthSwitchRequest::decode(payload);
    let _ = AuthMoreData::decode(payload);
    let _ = AuthReply::decode(payload, caps);
    if let Ok(ok) = OkPacket::decode(payload, caps) {
        let mut out = bytes::BytesMut::new();
        ok.encode(&mut out, caps);
        let _ = OkPacket::decode(&out, caps).unwrap();
    }
    let _ = ErrPacket::decode(payload);
    let _ = EofPacket::decode(payload, caps);
});
