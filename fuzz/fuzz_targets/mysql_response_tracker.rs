//! Feeds an arbitrary packet stream to the response tracker, for an arbitrary command and
//! capability set, with rows sometimes shown only as a prefix: it may reject the stream but
//! must not panic, and must accept nothing once it reported the end of the response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidepool::mysql::protocol::Capabilities;
use tidepool::mysql::protocol::packet::MAX_CHUNK;
use tidepool::mysql::protocol::tracker::{ResponseTracker, TrackerEvent};

fuzz_target!(|data: &[u8]| {
    let [command, caps_seed, rest @ ..] = data else {
        return;
    };
    let caps = Capabilities(u64::from(*caps_seed).wrapping_mul(0x0801_0204_8102_0409) | (1 << 9));
    let mut tracker = ResponseTracker::new(*command, caps);
    // Each packet: one length byte, then that many bytes; 0xFF stands for a MAX_CHUNK packet
    // of which only the next 8 bytes are shown (a large row relayed without buffering).
    let mut input = rest;
    let mut ended = false;
    while let Some((&len, tail)) = input.split_first() {
        let shown = if len == 0xFF { 8 } else { usize::from(len) }.min(tail.len());
        let declared = if len == 0xFF { MAX_CHUNK } else { shown };
        let (head, next) = tail.split_at(shown);
        input = next;
        let event = tracker.feed_head(declared, head);
        if ended {
            assert!(event.is_err(), "nothing is accepted after the end");
        }
        match event {
            Ok(TrackerEvent::Done(_) | TrackerEvent::NeedsAuthExchange) => {
                assert!(tracker.is_done());
                ended = true;
            }
            Ok(_) => assert!(!tracker.is_done() || !tracker.expects_response()),
            Err(_) => return,
        }
    }
});
