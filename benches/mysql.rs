//! Micro-benchmarks of MySQL packet framing and response-end tracking on what a session relays:
//! a 200k-row result set arriving in 16 KiB reads (framed, every packet fed to the tracker, as
//! the relay does), with and without `CLIENT_DEPRECATE_EOF`, and a one-row point-select result.
//!
//! `cargo bench --bench mysql` — bytes/s and packets/s.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidepool::mysql::protocol::Capabilities;
use tidepool::mysql::protocol::capabilities::{
    CLIENT_DEPRECATE_EOF, CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS,
};
use tidepool::mysql::protocol::command::COM_QUERY;
use tidepool::mysql::protocol::packet::{
    decode_packet, put_lenenc_bytes, put_lenenc_int, write_packet,
};
use tidepool::mysql::protocol::tracker::{ResponseTracker, TrackerEvent};

const READ: usize = 16 * 1024;
const MAX_PAYLOAD: usize = 1 << 30;
const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;

fn caps(deprecate_eof: bool) -> Capabilities {
    let c = Capabilities(CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SESSION_TRACK);
    if deprecate_eof {
        c.with(CLIENT_DEPRECATE_EOF)
    } else {
        c
    }
}

fn column_def(name: &str) -> Vec<u8> {
    let mut p = BytesMut::new();
    for s in ["def", "bench", "sbtest1", "sbtest1", name, name] {
        put_lenenc_bytes(&mut p, s.as_bytes());
    }
    p.extend_from_slice(&[0x0c, 45, 0, 0, 1, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
    p.to_vec()
}

fn eof() -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p
}

/// OK with the 0xFE header: the terminator under `CLIENT_DEPRECATE_EOF`.
fn ok_terminator() -> Vec<u8> {
    let mut p = vec![0xfe, 0, 0];
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    p
}

/// The text-protocol result of a `SELECT id, k, c, pad` over `rows` rows, as MariaDB sends it.
fn result_set(rows: usize, deprecate_eof: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut seq = 1u8;
    let mut put = |out: &mut BytesMut, payload: &[u8]| {
        seq = write_packet(out, seq, payload);
    };
    let mut count = BytesMut::new();
    put_lenenc_int(&mut count, 4);
    put(&mut out, &count);
    for name in ["id", "k", "c", "pad"] {
        put(&mut out, &column_def(name));
    }
    if !deprecate_eof {
        put(&mut out, &eof());
    }
    let c = "68487932199-96439406143-93774651418-41631865787-96406072701";
    let pad = "22195207048-70116052123-74140395089-76317954521-98694025897";
    for i in 0..rows {
        let mut row = BytesMut::new();
        put_lenenc_bytes(&mut row, i.to_string().as_bytes());
        put_lenenc_bytes(&mut row, (i * 7 % 10_000).to_string().as_bytes());
        put_lenenc_bytes(&mut row, c.as_bytes());
        put_lenenc_bytes(&mut row, pad.as_bytes());
        put(&mut out, &row);
    }
    put(
        &mut out,
        &if deprecate_eof {
            ok_terminator()
        } else {
            eof()
        },
    );
    out.to_vec()
}

/// Frames `buf` as it arrives in `READ`-byte reads and feeds every packet to a tracker, as the
/// relay does; returns the packet count.
fn track_in_reads(buf: &[u8], caps: Capabilities) -> usize {
    let mut tracker = ResponseTracker::new(COM_QUERY, caps);
    let (mut start, mut arrived, mut packets) = (0, 0, 0);
    while arrived < buf.len() {
        arrived = (arrived + READ).min(buf.len());
        while let Some(frame) = decode_packet(&buf[start..arrived], MAX_PAYLOAD).expect("valid") {
            let payload = &buf[start + frame.payload.start..start + frame.payload.end];
            match tracker.feed(payload).expect("valid response") {
                TrackerEvent::Continue => {}
                TrackerEvent::Done(end) => {
                    black_box(end);
                }
                other => panic!("unexpected {other:?}"),
            }
            start += frame.wire_len();
            packets += 1;
        }
    }
    assert!(tracker.is_done() && start == buf.len());
    packets
}

fn benches(c: &mut Criterion) {
    for (name, rows, deprecate_eof) in [
        ("200k-row result, EOF framing", 200_000, false),
        ("200k-row result, DEPRECATE_EOF", 200_000, true),
        ("1-row point select", 1, false),
    ] {
        let buf = result_set(rows, deprecate_eof);
        let caps = caps(deprecate_eof);
        let packets = track_in_reads(&buf, caps) as u64;
        let mut g = c.benchmark_group("mysql/bytes");
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(name, |b| b.iter(|| track_in_reads(black_box(&buf), caps)));
        g.finish();
        let mut g = c.benchmark_group("mysql/packets");
        g.throughput(Throughput::Elements(packets));
        g.bench_function(name, |b| b.iter(|| track_in_reads(black_box(&buf), caps)));
        g.finish();
    }
}

criterion_group! {
    name = mysql;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(mysql);
