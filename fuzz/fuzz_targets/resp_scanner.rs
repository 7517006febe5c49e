//! Feeds arbitrary bytes, split into arbitrary reads, to the reply scanner and the command
//! parser: neither may panic, and the incremental result must equal the one-shot result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidepool::redis::resp::*;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let chunks = chunk_sizes(seed);
    // Small limits so the limit paths are reached with small inputs.
    let small = Limits {
        max_bulk_len: 64,
        max_array_len: 8,
        max_depth: 4,
        max_inline_len: 32,
    };
    for limits in [Limits::default(), small] {
        let frames = run(stream, &[usize::MAX], scanner(limits));
        assert_eq!(run(stream, &chunks, scanner(limits)), frames);
        let mut start = 0;
        for frame in frames.iter().flatten() {
            let bytes = &stream[start..start + frame.len];
            assert!(
                decode_value(bytes, limits).is_ok(),
                "a scanned frame must decode"
            );
            start += frame.len;
        }

        let commands = run(stream, &[usize::MAX], parser(limits));
        assert_eq!(run(stream, &chunks, parser(limits)), commands);
        let mut start = 0;
        for cmd in commands.iter().flatten() {
            let frame = &stream[start..start + cmd.len];
            for i in 0..cmd.argc() {
                let _ = cmd.arg(frame, i);
            }
            start += cmd.len;
        }
    }
});

/// Read sizes from 1 to 16 bytes, derived from one seed byte.
fn chunk_sizes(seed: u8) -> Vec<usize> {
    let mut state = u32::from(seed) | 0x100;
    (0..8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 16) as usize + 1
        })
        .collect()
}

type Step<T> = Result<Option<(usize, T)>, RespError>;

fn scanner(limits: Limits) -> impl FnMut(&[u8]) -> Step<FrameInfo> {
    let mut scanner = Scanner::new(limits);
    move |buf| Ok(scanner.scan(buf)?.map(|info| (info.len, info)))
}

fn parser(limits: Limits) -> impl FnMut(&[u8]) -> Step<Command> {
    let mut parser = CommandParser::new(limits);
    move |buf| Ok(parser.parse(buf)?.map(|cmd| (cmd.len, cmd)))
}

/// Runs a decoder over `stream` as it arrives in reads of the given sizes (cycled), like a
/// session would: items are removed from the front as they complete. Stops at the first error.
fn run<T>(
    stream: &[u8],
    chunks: &[usize],
    mut step: impl FnMut(&[u8]) -> Step<T>,
) -> Vec<Result<T, RespError>> {
    let mut out = Vec::new();
    let (mut start, mut fed) = (0, 0);
    for &size in chunks.iter().cycle() {
        if fed == stream.len() {
            break;
        }
        fed = fed.saturating_add(size).min(stream.len());
        loop {
            match step(&stream[start..fed]) {
                Ok(Some((len, item))) => {
                    assert!(len > 0 && start + len <= fed, "item length out of bounds");
                    start += len;
                    out.push(Ok(item));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}
