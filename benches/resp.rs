//! Micro-benchmarks of the RESP codec on the inputs the proxy sees: single small commands, a
//! 100k-command pipeline, and large replies arriving in 16 KiB reads, scanned incrementally the
//! way the lane reader does (the scanner resumes where it stopped; nothing is rescanned).
//!
//! `cargo bench --bench resp` — each input is measured twice, once as bytes/s and once as
//! commands (or frames / elements) per second.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tidepool::redis::resp::{CommandParser, Limits, Scanner, encode_command};

const READ: usize = 16 * 1024;

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_command(&mut out, args);
    out.to_vec()
}

/// `n` commands, alternating `SET key:i value` and `GET key:i` (what redis-benchmark sends).
fn pipeline(n: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    for i in 0..n {
        let key = format!("key:{:012}", i % 10_000);
        if i % 2 == 0 {
            encode_command(&mut out, &[b"SET", key.as_bytes(), b"xxx"]);
        } else {
            encode_command(&mut out, &[b"GET", key.as_bytes()]);
        }
    }
    out.to_vec()
}

/// One array reply of `n` bulk strings (an `LRANGE 0 -1` / `HGETALL` of a large key).
fn big_array(n: usize) -> Vec<u8> {
    let mut out = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        let v = format!("value-{i:08}");
        out.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    out
}

/// `n` replies as a pipelined GET/SET run gets them.
fn reply_stream(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            out.extend_from_slice(b"+OK\r\n");
        } else {
            out.extend_from_slice(b"$3\r\nxxx\r\n");
        }
    }
    out
}

/// Parses every command in `buf` from the front, as a session does with its read buffer.
fn parse_all(buf: &[u8]) -> usize {
    let mut parser = CommandParser::new(Limits::default());
    let (mut at, mut n) = (0, 0);
    while let Some(cmd) = parser.parse(&buf[at..]).expect("valid input") {
        at += cmd.len;
        n += 1;
    }
    n
}

/// Scans `buf` as it arrives in `READ`-byte reads: after each read, every complete frame is
/// taken from the front of what has arrived; a partial frame is resumed after the next read.
fn scan_in_reads(buf: &[u8]) -> usize {
    let mut scanner = Scanner::new(Limits::default());
    let (mut start, mut arrived, mut frames) = (0, 0, 0);
    while arrived < buf.len() {
        arrived = (arrived + READ).min(buf.len());
        while let Some(info) = scanner.scan(&buf[start..arrived]).expect("valid input") {
            start += info.len;
            frames += 1;
        }
    }
    assert_eq!(start, buf.len());
    frames
}

fn both<F: FnMut() -> usize>(c: &mut Criterion, name: &str, bytes: usize, units: u64, mut f: F) {
    let mut run = |group: &mut BenchmarkGroup<'_, _>| {
        group.bench_function(name, |b| b.iter(|| black_box(f())));
    };
    let mut g = c.benchmark_group("resp/bytes");
    g.throughput(Throughput::Bytes(bytes as u64));
    run(&mut g);
    g.finish();
    let mut g = c.benchmark_group("resp/units");
    g.throughput(Throughput::Elements(units));
    run(&mut g);
    g.finish();
}

fn benches(c: &mut Criterion) {
    let get = command(&[b"GET", b"key:000000000042"]);
    both(c, "parse one GET", get.len(), 1, || {
        parse_all(black_box(&get))
    });

    let set = command(&[b"SET", b"session:4f2a9c", &[b'v'; 64]]);
    both(c, "parse one SET 64B", set.len(), 1, || {
        parse_all(black_box(&set))
    });

    let inline = b"GET key:000000000042\r\n".to_vec();
    both(c, "parse one inline GET", inline.len(), 1, || {
        parse_all(black_box(&inline))
    });

    let pipe = pipeline(100_000);
    both(
        c,
        "parse 100k-command pipeline",
        pipe.len(),
        100_000,
        || parse_all(black_box(&pipe)),
    );

    let replies = reply_stream(100_000);
    both(
        c,
        "scan 100k pipelined replies in 16 KiB reads",
        replies.len(),
        100_000,
        || scan_in_reads(black_box(&replies)),
    );

    let array = big_array(200_000);
    both(
        c,
        "scan 200k-element reply in 16 KiB reads",
        array.len(),
        200_000,
        || scan_in_reads(black_box(&array)),
    );
}

criterion_group! {
    name = resp;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(resp);
