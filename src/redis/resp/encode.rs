//! Encoders: every value the proxy writes itself, appended to a `BytesMut`.

use bytes::{BufMut, BytesMut};

fn put_decimal(out: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn put_header(out: &mut BytesMut, ty: u8, n: usize) {
    out.put_u8(ty);
    put_decimal(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Writes a line, replacing CR and LF with spaces so the text cannot break framing.
fn put_line(out: &mut BytesMut, ty: u8, text: &str) {
    out.reserve(text.len() + 3);
    out.put_u8(ty);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

pub fn encode_command(out: &mut BytesMut, args: &[&[u8]]) {
    out.reserve(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    put_header(out, b'*', args.len());
    for arg in args {
        encode_bulk(out, arg);
    }
}

/// `+s\r\n`; CR and LF in `s` become spaces.
pub fn encode_simple(out: &mut BytesMut, s: &str) {
    put_line(out, b'+', s);
}

/// `-msg\r\n`; CR and LF in `msg` become spaces.
pub fn encode_error(out: &mut BytesMut, msg: &str) {
    put_line(out, b'-', msg);
}

pub fn encode_integer(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    if n < 0 {
        out.put_u8(b'-');
    }
    put_decimal(out, n.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

pub fn encode_bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    put_header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// `_\r\n` in RESP3, `$-1\r\n` in RESP2.
pub fn encode_null(out: &mut BytesMut, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

pub fn encode_array_header(out: &mut BytesMut, n: usize) {
    put_header(out, b'*', n);
}

/// `%n` in RESP3; a flat array of `2n` elements in RESP2.
pub fn encode_map_header(out: &mut BytesMut, n: usize, resp3: bool) {
    if resp3 {
        put_header(out, b'%', n);
    } else {
        put_header(out, b'*', n * 2);
    }
}
