use super::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn limits() -> Limits {
    Limits::default()
}

fn malformed(why: &'static str) -> RespError {
    RespError::Malformed(why)
}

/// Frames found by scanning `buf` in one call per frame; a trailing error or partial frame ends
/// the list.
fn scan_one_shot(buf: &[u8], limits: Limits) -> Vec<Result<FrameInfo, RespError>> {
    let mut scanner = Scanner::new(limits);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        match scanner.scan(&buf[start..]) {
            Ok(Some(info)) => {
                assert!(info.len > 0 && start + info.len <= buf.len());
                start += info.len;
                out.push(Ok(info));
            }
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// The same, with the bytes arriving in chunks of the given sizes (cycled).
fn scan_chunked(buf: &[u8], chunks: &[usize], limits: Limits) -> Vec<Result<FrameInfo, RespError>> {
    let mut scanner = Scanner::new(limits);
    let mut out = Vec::new();
    let (mut start, mut fed) = (0, 0);
    for &size in chunks.iter().cycle() {
        if fed == buf.len() {
            break;
        }
        fed = (fed + size.max(1)).min(buf.len());
        loop {
            match scanner.scan(&buf[start..fed]) {
                Ok(Some(info)) => {
                    start += info.len;
                    out.push(Ok(info));
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

fn parse_one_shot(buf: &[u8], limits: Limits) -> Vec<Result<Command, RespError>> {
    let mut parser = CommandParser::new(limits);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        match parser.parse(&buf[start..]) {
            Ok(Some(cmd)) => {
                assert!(cmd.len > 0 && start + cmd.len <= buf.len());
                start += cmd.len;
                out.push(Ok(cmd));
            }
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

fn parse_chunked(buf: &[u8], chunks: &[usize], limits: Limits) -> Vec<Result<Command, RespError>> {
    let mut parser = CommandParser::new(limits);
    let mut out = Vec::new();
    let (mut start, mut fed) = (0, 0);
    for &size in chunks.iter().cycle() {
        if fed == buf.len() {
            break;
        }
        fed = (fed + size.max(1)).min(buf.len());
        loop {
            match parser.parse(&buf[start..fed]) {
                Ok(Some(cmd)) => {
                    start += cmd.len;
                    out.push(Ok(cmd));
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

fn scan(buf: &[u8]) -> Result<Option<FrameInfo>, RespError> {
    Scanner::new(limits()).scan(buf)
}

fn frame(len: usize, kind: u8) -> Result<Option<FrameInfo>, RespError> {
    Ok(Some(FrameInfo { len, kind }))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// One valid frame of every type, with the value it decodes to.
fn corpus() -> Vec<(&'static [u8], Value)> {
    vec![
        (b"+OK\r\n", Value::Simple(b("OK"))),
        (b"+\r\n", Value::Simple(b(""))),
        (b"-ERR bad thing\r\n", Value::Error(b("ERR bad thing"))),
        (b":0\r\n", Value::Integer(0)),
        (b":-9223372036854775808\r\n", Value::Integer(i64::MIN)),
        (b":+7\r\n", Value::Integer(7)),
        (b"$5\r\nhello\r\n", Value::Bulk(b("hello"))),
        (b"$0\r\n\r\n", Value::Bulk(b(""))),
        (b"$4\r\na\r\nb\r\n", Value::Bulk(b("a\r\nb"))),
        (b"$-1\r\n", Value::Null),
        (b"*-1\r\n", Value::Null),
        (b"*0\r\n", Value::Array(vec![])),
        (
            b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+y\r\n",
            Value::Array(vec![
                Value::Integer(1),
                Value::Bulk(b("x")),
                Value::Array(vec![Value::Simple(b("y"))]),
            ]),
        ),
        (b"_\r\n", Value::Null),
        (b"#t\r\n", Value::Boolean(true)),
        (b"#f\r\n", Value::Boolean(false)),
        (b",3.25\r\n", Value::Double(b("3.25"))),
        (b",-inf\r\n", Value::Double(b("-inf"))),
        (b",1e-5\r\n", Value::Double(b("1e-5"))),
        (b"(-3492890328409238509324850943850943825024385\r\n", Value::BigNumber(b("-3492890328409238509324850943850943825024385"))),
        (b"!21\r\nSYNTAX invalid syntax\r\n", Value::Error(b("SYNTAX invalid syntax"))),
        (b"=15\r\ntxt:Some string\r\n", Value::Verbatim(b("txt:Some string"))),
        (
            b"%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#f\r\n",
            Value::Map(vec![
                (Value::Simple(b("first")), Value::Integer(1)),
                (Value::Bulk(b("second")), Value::Boolean(false)),
            ]),
        ),
        (b"%0\r\n", Value::Map(vec![])),
        (b"~2\r\n+a\r\n:2\r\n", Value::Set(vec![Value::Simple(b("a")), Value::Integer(2)])),
        (
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Value::Push(vec![Value::Bulk(b("message")), Value::Bulk(b("ch")), Value::Bulk(b("hi"))]),
        ),
        (
            b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.19\r\n$1\r\nb\r\n,0.01\r\n*2\r\n:2039123\r\n:9543892\r\n",
            Value::Array(vec![Value::Integer(2039123), Value::Integer(9543892)]),
        ),
        (
            b"*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n",
            Value::Array(vec![Value::Integer(1), Value::Integer(2)]),
        ),
        (b"|0\r\n+OK\r\n", Value::Simple(b("OK"))),
    ]
}

#[test]
fn scans_and_decodes_every_type() {
    for (bytes, value) in corpus() {
        let kind = match (bytes[0], &value) {
            (b'|', Value::Array(_)) => b'*',
            (b'|', Value::Simple(_)) => b'+',
            (first, _) => first,
        };
        let shown = String::from_utf8_lossy(bytes);
        assert_eq!(scan(bytes), frame(bytes.len(), kind), "{shown:?}");
        assert_eq!(decode_value(bytes, limits()), Ok(value), "{shown:?}");
    }
}

#[test]
fn frame_info_flags() {
    assert!(scan(b"-ERR x\r\n").unwrap().unwrap().is_error());
    assert!(scan(b"!1\r\nx\r\n").unwrap().unwrap().is_error());
    assert!(!scan(b"+OK\r\n").unwrap().unwrap().is_error());
    let push = scan(b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n")
        .unwrap()
        .unwrap();
    assert!(push.is_push() && !push.is_error());
    let attributed_error = scan(b"|1\r\n+a\r\n+b\r\n-ERR x\r\n").unwrap().unwrap();
    assert_eq!(
        attributed_error,
        FrameInfo {
            len: 20,
            kind: b'-'
        }
    );
    assert!(attributed_error.is_error());
}

#[test]
fn pipelined_frames_are_delimited_one_at_a_time() {
    let buf = b"+OK\r\n:1\r\n$3\r\nabc\r\n*1\r\n_\r\n+partial";
    let lens: Vec<_> = scan_one_shot(buf, limits())
        .into_iter()
        .map(|f| f.unwrap().len)
        .collect();
    assert_eq!(lens, [5, 4, 9, 7]);
}

#[test]
fn every_frame_one_byte_at_a_time_equals_one_shot() {
    let mut all = Vec::new();
    for (bytes, _) in corpus() {
        all.extend_from_slice(bytes);
        let one_shot = scan_one_shot(bytes, limits());
        assert_eq!(one_shot.len(), 1);
        assert_eq!(scan_chunked(bytes, &[1], limits()), one_shot);
        for cut in 0..bytes.len() {
            assert_eq!(
                scan(&bytes[..cut]),
                Ok(None),
                "prefix {cut} of {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    assert_eq!(
        scan_chunked(&all, &[1], limits()),
        scan_one_shot(&all, limits())
    );
    assert_eq!(scan_one_shot(&all, limits()).len(), corpus().len());
}

#[test]
fn malformed_frames() {
    let cases: &[(&[u8], &str)] = &[
        (b"A\r\n", "unknown type byte"),
        (b"\r\n", "unknown type byte"),
        (b"+OK\n", "expected '\\r\\n', got a lone '\\n'"),
        (b"+OK\rX", "expected '\\n' after '\\r'"),
        (b"$3\nabc\r\n", "expected '\\r\\n', got a lone '\\n'"),
        (b"$3\r\nabcd\r\n", "expected '\\r\\n' after bulk string"),
        (b"$3\r\nabc\n\n", "expected '\\r\\n' after bulk string"),
        (b"$-2\r\n", "invalid length"),
        (b"$-0\r\n", "invalid length"),
        (b"$+3\r\nabc\r\n", "invalid length"),
        (b"$\r\n", "invalid length"),
        (b"$3a\r\n", "invalid length"),
        (b"$ 3\r\n", "invalid length"),
        (b"*99999999999999999999\r\n", "invalid length"),
        (b"*123456789012345678901", "invalid length"),
        (b"!-1\r\n", "invalid length"),
        (b"%-1\r\n", "invalid length"),
        (b"*-2\r\n", "invalid length"),
        (b":abc\r\n", "invalid integer"),
        (b":\r\n", "invalid integer"),
        (b":9223372036854775808\r\n", "invalid integer"),
        (b":1.5\r\n", "invalid integer"),
        (b"_x\r\n", "invalid null"),
        (b"#x\r\n", "invalid boolean"),
        (b"#\r\n", "invalid boolean"),
        (b",abc\r\n", "invalid double"),
        (b",\r\n", "invalid double"),
        (b"(12a\r\n", "invalid big number"),
        (b"(\r\n", "invalid big number"),
        (b"=3\r\ntxt\r\n", "verbatim string without a format prefix"),
        (
            b"=5\r\ntxtab\r\n",
            "verbatim string without a format prefix",
        ),
        (b"$?\r\n", "streamed RESP3 types are not supported"),
        (b"*?\r\n", "streamed RESP3 types are not supported"),
        (b";4\r\nabcd\r\n", "streamed RESP3 types are not supported"),
        (b"*2\r\n:1\r\nZ", "unknown type byte"),
    ];
    for &(bytes, why) in cases {
        assert_eq!(
            scan(bytes),
            Err(malformed(why)),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(
            scan_chunked(bytes, &[1], limits()),
            vec![Err(malformed(why))]
        );
        assert_eq!(decode_value(bytes, limits()), Err(malformed(why)));
    }
}

#[test]
fn decode_rejects_incomplete_and_trailing_bytes() {
    assert_eq!(decode_value(b"", limits()), Err(INCOMPLETE));
    assert_eq!(decode_value(b"*2\r\n:1\r\n", limits()), Err(INCOMPLETE));
    assert_eq!(decode_value(b"$5\r\nhel", limits()), Err(INCOMPLETE));
    assert_eq!(decode_value(b"+OK", limits()), Err(INCOMPLETE));
    assert_eq!(
        decode_value(b"+OK\r\n+OK\r\n", limits()),
        Err(malformed("trailing bytes after frame"))
    );
}

#[test]
fn declared_lengths_fail_before_the_payload_arrives() {
    assert_eq!(
        scan(b"$600000000\r\n"),
        Err(RespError::TooLarge {
            what: "bulk string",
            len: 600_000_000,
            max: 512 << 20
        })
    );
    assert_eq!(
        RespError::TooLarge {
            what: "bulk string",
            len: 600_000_000,
            max: 536_870_912
        }
        .to_string(),
        "bulk string length 600000000 exceeds limit 536870912"
    );
    let small = Limits {
        max_bulk_len: 4,
        max_array_len: 2,
        max_depth: 2,
        max_inline_len: 8,
    };
    let scan_small = |buf: &[u8]| Scanner::new(small).scan(buf);
    assert_eq!(scan_small(b"$4\r\nabcd\r\n"), frame(10, b'$'));
    assert_eq!(
        scan_small(b"$5\r\n"),
        Err(RespError::TooLarge {
            what: "bulk string",
            len: 5,
            max: 4
        })
    );
    assert_eq!(
        scan_small(b"!5\r\n"),
        Err(RespError::TooLarge {
            what: "bulk string",
            len: 5,
            max: 4
        })
    );
    assert_eq!(
        scan_small(b"=5\r\n"),
        Err(RespError::TooLarge {
            what: "bulk string",
            len: 5,
            max: 4
        })
    );
    assert_eq!(
        scan_small(b"*3\r\n"),
        Err(RespError::TooLarge {
            what: "array",
            len: 3,
            max: 2
        })
    );
    assert_eq!(
        scan_small(b"%3\r\n"),
        Err(RespError::TooLarge {
            what: "map",
            len: 3,
            max: 2
        })
    );
    assert_eq!(
        scan_small(b"~3\r\n"),
        Err(RespError::TooLarge {
            what: "set",
            len: 3,
            max: 2
        })
    );
    assert_eq!(
        scan_small(b">3\r\n"),
        Err(RespError::TooLarge {
            what: "push",
            len: 3,
            max: 2
        })
    );
    assert_eq!(
        scan_small(b"|3\r\n"),
        Err(RespError::TooLarge {
            what: "attribute",
            len: 3,
            max: 2
        })
    );
    assert_eq!(scan_small(b"+abcd\r\n"), frame(7, b'+'));
    assert_eq!(
        scan_small(b"+abcde"),
        Err(RespError::TooLarge {
            what: "simple string",
            len: 5,
            max: 4
        })
    );
    assert_eq!(
        decode_value(b"$5\r\nabcde\r\n", small),
        Err(RespError::TooLarge {
            what: "bulk string",
            len: 5,
            max: 4
        })
    );
}

#[test]
fn depth_limit_counts_aggregate_nesting() {
    let small = Limits {
        max_depth: 2,
        ..limits()
    };
    let scan_small = |buf: &[u8]| Scanner::new(small).scan(buf);
    assert_eq!(scan_small(b"*1\r\n*1\r\n:1\r\n"), frame(12, b'*'));
    assert_eq!(scan_small(b"*1\r\n*0\r\n"), frame(8, b'*'));
    assert_eq!(
        scan_small(b"*1\r\n*1\r\n*0\r\n"),
        Err(RespError::TooDeep { max: 2 })
    );
    assert_eq!(
        scan_small(b"*1\r\n%1\r\n~1\r\n"),
        Err(RespError::TooDeep { max: 2 })
    );
    // An attribute is nesting too, even before the value it annotates.
    assert_eq!(
        scan_small(b"*1\r\n|1\r\n*1\r\n"),
        Err(RespError::TooDeep { max: 2 })
    );
    // A null array opens nothing.
    assert_eq!(scan_small(b"*1\r\n*1\r\n*-1\r\n"), frame(13, b'*'));
    assert_eq!(
        decode_value(b"*1\r\n*1\r\n*0\r\n", small),
        Err(RespError::TooDeep { max: 2 })
    );
    let deep: Vec<u8> = b"*1\r\n"
        .repeat(64)
        .into_iter()
        .chain(b":1\r\n".iter().copied())
        .collect();
    assert_eq!(scan(&deep), frame(deep.len(), b'*'));
    let deeper = [b"*1\r\n".as_slice(), &deep].concat();
    assert_eq!(scan(&deeper), Err(RespError::TooDeep { max: 64 }));
}

#[test]
fn attributes_are_part_of_the_frame_and_skipped_by_decode() {
    let nested = b"|1\r\n+a\r\n|1\r\n+b\r\n+c\r\n+d\r\n%1\r\n|1\r\n+e\r\n+f\r\n+k\r\n+v\r\n";
    assert_eq!(scan(nested), frame(nested.len(), b'%'));
    assert_eq!(
        decode_value(nested, limits()),
        Ok(Value::Map(vec![(
            Value::Simple(b("k")),
            Value::Simple(b("v"))
        )]))
    );
    // An attribute alone is not a frame: the annotated value must follow.
    assert_eq!(scan(b"|1\r\n+a\r\n+b\r\n"), Ok(None));
}

#[test]
fn scanner_reset_discards_progress() {
    let mut scanner = Scanner::new(limits());
    assert_eq!(scanner.scan(b"*2\r\n:1\r\n"), Ok(None));
    scanner.reset();
    assert_eq!(scanner.scan(b"+OK\r\n"), frame(5, b'+'));
}

#[test]
fn incremental_scanning_examines_each_byte_about_once() {
    let elements = 200_000;
    let mut buf = format!("*{elements}\r\n").into_bytes();
    for i in 0..elements {
        if i % 2 == 0 {
            buf.extend_from_slice(b"$5\r\nhello\r\n");
        } else {
            buf.extend_from_slice(b":12345\r\n");
        }
    }
    let mut scanner = Scanner::new(limits());
    let mut fed = 0;
    let mut calls = 0;
    let info = loop {
        fed = (fed + 16 * 1024).min(buf.len());
        calls += 1;
        if let Some(info) = scanner.scan(&buf[..fed]).unwrap() {
            break info;
        }
    };
    assert_eq!(
        info,
        FrameInfo {
            len: buf.len(),
            kind: b'*'
        }
    );
    // Re-scanning from the frame start on each of the ~130 reads would examine ~100x the bytes.
    let examined = scanner.examined;
    assert!(
        examined <= buf.len() + 8 * calls,
        "examined {examined} of {} bytes",
        buf.len()
    );
    assert!(
        examined >= buf.len() / 4,
        "the counter misses work: {examined}"
    );
    // Bulk payloads are skipped by length: a 1 MiB string costs a few bytes.
    let mut big = b"$1048576\r\n".to_vec();
    big.resize(big.len() + (1 << 20), b'x');
    big.extend_from_slice(b"\r\n");
    let mut scanner = Scanner::new(limits());
    for chunk_end in (1..=big.len()).step_by(4096).chain([big.len()]) {
        let _ = scanner.scan(&big[..chunk_end]).unwrap();
    }
    assert!(scanner.examined < 64, "examined {}", scanner.examined);
}

// ---- commands ----

fn parse(buf: &[u8]) -> Result<Option<Command>, RespError> {
    CommandParser::new(limits()).parse(buf)
}

fn args_of(buf: &[u8]) -> Vec<Vec<u8>> {
    let cmd = parse(buf).unwrap().unwrap();
    (0..cmd.argc())
        .map(|i| cmd.arg(&buf[..cmd.len], i).to_vec())
        .collect()
}

fn inline_args(line: &str) -> Result<Vec<String>, RespError> {
    let buf = format!("{line}\r\n");
    let cmd = parse(buf.as_bytes())?.unwrap();
    assert!(cmd.inline);
    assert_eq!(cmd.len, buf.len());
    Ok((0..cmd.argc())
        .map(|i| String::from_utf8_lossy(cmd.arg(buf.as_bytes(), i)).into_owned())
        .collect())
}

#[test]
fn resp_commands() {
    let buf = b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\n*1\r\n$4\r\nPING\r\n";
    let cmd = parse(buf).unwrap().unwrap();
    assert_eq!(cmd.len, 31);
    assert!(!cmd.inline && cmd.inline_args.is_none());
    assert_eq!(cmd.argc(), 3);
    assert!(cmd.name_is(buf, "SET"));
    assert!(cmd.arg_is(buf, 1, "K"));
    assert!(!cmd.arg_is(buf, 3, "X"));
    assert_eq!(cmd.arg(buf, 2), b"v\r\nxy");
    assert_eq!(args_of(&buf[cmd.len..]), vec![b"PING".to_vec()]);
    for empty in [&b"*0\r\n"[..], b"*-1\r\n"] {
        let cmd = parse(empty).unwrap().unwrap();
        assert_eq!((cmd.len, cmd.argc(), cmd.inline), (empty.len(), 0, false));
        assert!(!cmd.name_is(empty, "PING"));
    }
    assert_eq!(args_of(b"*1\r\n$0\r\n\r\n"), vec![Vec::<u8>::new()]);
}

#[test]
fn resp_command_split_anywhere_equals_one_shot() {
    let buf = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\n0123456789\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\nPING\r\nget  k\n*0\r\n";
    let one_shot = parse_one_shot(buf, limits());
    assert_eq!(one_shot.len(), 5);
    for size in 1..8 {
        assert_eq!(parse_chunked(buf, &[size], limits()), one_shot);
    }
}

#[test]
fn malformed_commands() {
    let cases: &[(&[u8], RespError)] = &[
        (
            b"*1\r\n:1\r\n",
            malformed("expected '$' in a command array"),
        ),
        (
            b"*1\r\n*1\r\n$1\r\na\r\n",
            malformed("expected '$' in a command array"),
        ),
        (b"*1\r\n$-1\r\n", malformed("invalid length")),
        (b"*-2\r\n", malformed("invalid length")),
        (b"*x\r\n", malformed("invalid length")),
        (b"*1\n", malformed("expected '\\r\\n', got a lone '\\n'")),
        (
            b"*1\r\n$1\r\nab\r\n",
            malformed("expected '\\r\\n' after bulk string"),
        ),
        (
            b"*1\r\n$600000000\r\n",
            RespError::TooLarge {
                what: "bulk string",
                len: 600_000_000,
                max: 512 << 20,
            },
        ),
        (
            b"*100000000\r\n",
            RespError::TooLarge {
                what: "array",
                len: 100_000_000,
                max: 16 << 20,
            },
        ),
        (b"GET \"k\r\n", UNBALANCED),
    ];
    for (bytes, err) in cases {
        assert_eq!(
            parse(bytes),
            Err(err.clone()),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(parse_chunked(bytes, &[1], limits()), vec![Err(err.clone())]);
    }
}

#[test]
fn inline_commands_follow_sdssplitargs() {
    assert_eq!(
        inline_args("set \"a b\" 'c\\'d'"),
        Ok(vec!["set".into(), "a b".into(), "c'd".into()])
    );
    assert_eq!(
        inline_args("echo \"\\x41\\x4a\\x4G\""),
        Ok(vec!["echo".into(), "AJx4G".into()])
    );
    assert_eq!(
        inline_args("echo \"\\n\\r\\t\\b\\a\\\\\\\"\\q\""),
        Ok(vec!["echo".into(), "\n\r\t\u{8}\u{7}\\\"q".into()])
    );
    assert_eq!(
        inline_args("echo 'a\\nb'"),
        Ok(vec!["echo".into(), "a\\nb".into()])
    );
    assert_eq!(inline_args("  PING  "), Ok(vec!["PING".into()]));
    assert_eq!(
        inline_args("a\tb\x0bc"),
        Ok(vec!["a".into(), "b\x0bc".into()])
    );
    assert_eq!(inline_args("a\"b c\"d"), Err(UNBALANCED));
    assert_eq!(
        inline_args("a\"b c\" d"),
        Ok(vec!["ab c".into(), "d".into()])
    );
    assert_eq!(
        inline_args("x \"\" ''"),
        Ok(vec!["x".into(), "".into(), "".into()])
    );
    assert_eq!(inline_args("set \"a"), Err(UNBALANCED));
    assert_eq!(inline_args("set 'a"), Err(UNBALANCED));
    assert_eq!(inline_args("set \"a\"b"), Err(UNBALANCED));
    assert_eq!(inline_args("set 'a'b"), Err(UNBALANCED));
    assert_eq!(inline_args("set \"a\\"), Err(UNBALANCED));
    // A NUL ends the C string sdssplitargs reads.
    assert_eq!(
        inline_args("get k\0 more"),
        Ok(vec!["get".into(), "k".into()])
    );
    assert_eq!(inline_args(" \t "), Ok(vec![]));

    let cmd = parse(b"PING\n").unwrap().unwrap();
    assert_eq!((cmd.len, cmd.argc()), (5, 1));
    assert!(cmd.name_is(b"PING\n", "ping"));
    assert_eq!(parse(b"\r\n").unwrap().unwrap().argc(), 0);
    assert_eq!(parse(b"PING"), Ok(None));
}

#[test]
fn inline_length_limit() {
    let small = Limits {
        max_inline_len: 8,
        ..limits()
    };
    let parse_small = |buf: &[u8]| CommandParser::new(small).parse(buf);
    let too_large = Err(RespError::TooLarge {
        what: "inline command",
        len: 9,
        max: 8,
    });
    assert_eq!(parse_small(b"12345678\r\n").unwrap().unwrap().len, 10);
    assert_eq!(parse_small(b"12345678\n").unwrap().unwrap().len, 9);
    assert_eq!(parse_small(b"12345678\r"), Ok(None));
    assert_eq!(parse_small(b"123456789\n"), too_large);
    assert_eq!(parse_small(b"123456789"), Ok(None));
    assert_eq!(parse_small(b"1234567890"), too_large);
    assert_eq!(parse_small(b"123456789\r\n"), too_large);
    assert_eq!(parse_small(&[b'x'; 100]), too_large);
}

// ---- encoders ----

fn encoded(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut out = BytesMut::new();
    f(&mut out);
    out.to_vec()
}

#[test]
fn encoders() {
    assert_eq!(
        encoded(|o| encode_command(o, &[b"SET", b"k", b""])),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    );
    assert_eq!(encoded(|o| encode_simple(o, "OK")), b"+OK\r\n");
    assert_eq!(
        encoded(|o| encode_error(o, "ERR a\r\nb\nc")),
        b"-ERR a  b c\r\n"
    );
    assert_eq!(encoded(|o| encode_integer(o, 0)), b":0\r\n");
    assert_eq!(
        encoded(|o| encode_integer(o, i64::MIN)),
        b":-9223372036854775808\r\n"
    );
    assert_eq!(
        encoded(|o| encode_integer(o, i64::MAX)),
        b":9223372036854775807\r\n"
    );
    assert_eq!(encoded(|o| encode_bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
    assert_eq!(encoded(|o| encode_null(o, true)), b"_\r\n");
    assert_eq!(encoded(|o| encode_null(o, false)), b"$-1\r\n");
    assert_eq!(encoded(|o| encode_array_header(o, 12)), b"*12\r\n");
    assert_eq!(encoded(|o| encode_map_header(o, 3, true)), b"%3\r\n");
    assert_eq!(encoded(|o| encode_map_header(o, 3, false)), b"*6\r\n");
    let cmd = encoded(|o| encode_command(o, &[b"GET", b"key"]));
    assert_eq!(args_of(&cmd), vec![b"GET".to_vec(), b"key".to_vec()]);
}

#[test]
fn value_accessors() {
    assert_eq!(Value::Bulk(b("16")).as_int(), Some(16));
    assert_eq!(Value::Integer(-3).as_int(), Some(-3));
    assert_eq!(Value::Bulk(b("x")).as_int(), None);
    assert_eq!(Value::Null.as_int(), None);
    assert_eq!(
        Value::Verbatim(b("txt:# Server")).as_bytes(),
        Some(&b"# Server"[..])
    );
    assert_eq!(Value::Simple(b("OK")).as_bytes(), Some(&b"OK"[..]));
    assert_eq!(Value::Array(vec![]).as_bytes(), None);
}

// ---- property tests ----

/// Test-only encoder. `attrs` decides, value by value, whether to prefix an attribute.
fn encode_value(v: &Value, resp3: bool, attrs: &mut impl Iterator<Item = bool>, out: &mut Vec<u8>) {
    if resp3 && attrs.next().unwrap_or(false) {
        out.extend_from_slice(b"|1\r\n+ttl\r\n:30\r\n");
    }
    let header = |out: &mut Vec<u8>, ty: char, n: usize| {
        out.extend_from_slice(format!("{ty}{n}\r\n").as_bytes())
    };
    let line = |out: &mut Vec<u8>, ty: u8, s: &[u8]| {
        out.push(ty);
        out.extend_from_slice(s);
        out.extend_from_slice(b"\r\n");
    };
    let blob = |out: &mut Vec<u8>, ty: char, s: &[u8]| {
        header(out, ty, s.len());
        out.extend_from_slice(s);
        out.extend_from_slice(b"\r\n");
    };
    match v {
        Value::Simple(s) => line(out, b'+', s),
        Value::Error(s) if resp3 && s.len() % 2 == 1 => blob(out, '!', s),
        Value::Error(s) => line(out, b'-', s),
        Value::Integer(n) => line(out, b':', n.to_string().as_bytes()),
        Value::Bulk(s) => blob(out, '$', s),
        Value::Null if resp3 => out.extend_from_slice(b"_\r\n"),
        Value::Null => out.extend_from_slice(b"$-1\r\n"),
        Value::Double(s) => line(out, b',', s),
        Value::Boolean(t) => line(out, b'#', if *t { b"t" } else { b"f" }),
        Value::BigNumber(s) => line(out, b'(', s),
        Value::Verbatim(s) => blob(out, '=', s),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            let ty = match v {
                Value::Set(_) => '~',
                Value::Push(_) => '>',
                _ => '*',
            };
            header(out, ty, items.len());
            for item in items {
                encode_value(item, resp3, attrs, out);
            }
        }
        Value::Map(pairs) => {
            header(out, '%', pairs.len());
            for (k, v) in pairs {
                encode_value(k, resp3, attrs, out);
                encode_value(v, resp3, attrs, out);
            }
        }
    }
}

fn text(re: &str) -> impl Strategy<Value = Bytes> {
    proptest::string::string_regex(re)
        .unwrap()
        .prop_map(|s| Bytes::from(s.into_bytes()))
}

fn resp2_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        text("[ -~]{0,12}").prop_map(Value::Simple),
        text("[A-Z]{1,6} [a-z ]{0,10}").prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Value::Bulk(v.into())),
        Just(Value::Null),
    ]
}

fn resp3_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => resp2_scalar(),
        1 => prop_oneof![
            (-1e12f64..1e12).prop_map(|d| Value::Double(Bytes::from(d.to_string()))),
            Just(Value::Double(b("inf"))),
            Just(Value::Double(b("-inf"))),
        ],
        1 => any::<bool>().prop_map(Value::Boolean),
        1 => text("-?[1-9][0-9]{0,40}").prop_map(Value::BigNumber),
        1 => text("(txt|mkd):[ -~\r\n]{0,20}").prop_map(Value::Verbatim),
    ]
}

fn resp2_value() -> impl Strategy<Value = Value> {
    resp2_scalar().prop_recursive(4, 64, 8, |inner| {
        proptest::collection::vec(inner, 0..8).prop_map(Value::Array)
    })
}

/// RESP3 trees whose map keys and set members are scalars, which the oracle can hash.
fn resp3_value() -> impl Strategy<Value = Value> {
    resp3_scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Push),
            proptest::collection::vec(resp3_scalar(), 0..6).prop_map(Value::Set),
            proptest::collection::vec((resp3_scalar(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

fn resp2_oracle(v: &Value) -> redis_protocol::resp2::types::OwnedFrame {
    use redis_protocol::resp2::types::OwnedFrame as F;
    match v {
        Value::Simple(s) => F::SimpleString(s.to_vec()),
        Value::Error(s) => F::Error(String::from_utf8(s.to_vec()).unwrap()),
        Value::Integer(n) => F::Integer(*n),
        Value::Bulk(s) => F::BulkString(s.to_vec()),
        Value::Null => F::Null,
        Value::Array(items) => F::Array(items.iter().map(resp2_oracle).collect()),
        other => unreachable!("not RESP2: {other:?}"),
    }
}

fn resp3_oracle(v: &Value) -> redis_protocol::resp3::types::OwnedFrame {
    use redis_protocol::resp3::types::{OwnedFrame as F, VerbatimStringFormat};
    let list = |items: &[Value]| items.iter().map(resp3_oracle).collect::<Vec<_>>();
    let attributes = None;
    match v {
        Value::Simple(s) => F::SimpleString {
            data: s.to_vec(),
            attributes,
        },
        Value::Error(s) if s.len() % 2 == 1 => F::BlobError {
            data: s.to_vec(),
            attributes,
        },
        Value::Error(s) => F::SimpleError {
            data: String::from_utf8(s.to_vec()).unwrap(),
            attributes,
        },
        Value::Integer(n) => F::Number {
            data: *n,
            attributes,
        },
        Value::Bulk(s) => F::BlobString {
            data: s.to_vec(),
            attributes,
        },
        Value::Null => F::Null,
        Value::Double(s) => F::Double {
            data: match &s[..] {
                b"inf" => f64::INFINITY,
                b"-inf" => f64::NEG_INFINITY,
                text => std::str::from_utf8(text).unwrap().parse().unwrap(),
            },
            attributes,
        },
        Value::Boolean(t) => F::Boolean {
            data: *t,
            attributes,
        },
        Value::BigNumber(s) => F::BigNumber {
            data: s.to_vec(),
            attributes,
        },
        Value::Verbatim(s) => F::VerbatimString {
            data: s[4..].to_vec(),
            format: if s.starts_with(b"txt") {
                VerbatimStringFormat::Text
            } else {
                VerbatimStringFormat::Markdown
            },
            attributes,
        },
        Value::Array(items) => F::Array {
            data: list(items),
            attributes,
        },
        Value::Push(items) => F::Push {
            data: list(items),
            attributes,
        },
        Value::Set(items) => F::Set {
            data: list(items).into_iter().collect(),
            attributes,
        },
        Value::Map(pairs) => {
            // The oracle keeps the first of duplicate keys.
            let mut data = redis_protocol::resp3::types::FrameMap::new();
            for (k, v) in pairs.iter().rev() {
                data.insert(resp3_oracle(k), resp3_oracle(v));
            }
            F::Map { data, attributes }
        }
    }
}

fn encode_all(values: &[Value], resp3: bool, attrs: &[bool]) -> (Vec<u8>, Vec<usize>) {
    let mut attrs = attrs.iter().copied().cycle();
    let mut out = Vec::new();
    let mut lens = Vec::new();
    for v in values {
        let before = out.len();
        encode_value(v, resp3, &mut attrs, &mut out);
        lens.push(out.len() - before);
    }
    (out, lens)
}

proptest! {
    #[test]
    fn random_trees_any_chunking_same_boundaries(
        values in proptest::collection::vec(resp3_value(), 1..6),
        attrs in proptest::collection::vec(any::<bool>(), 1..8),
        chunks in proptest::collection::vec(1usize..64, 1..10),
    ) {
        let (buf, lens) = encode_all(&values, true, &attrs);
        let one_shot = scan_one_shot(&buf, limits());
        let found: Vec<usize> = one_shot.iter().map(|f| f.clone().unwrap().len).collect();
        prop_assert_eq!(&found, &lens);
        prop_assert_eq!(scan_chunked(&buf, &chunks, limits()), one_shot);
        let mut start = 0;
        for (v, len) in values.iter().zip(lens) {
            prop_assert_eq!(&decode_value(&buf[start..start + len], limits()).unwrap(), v);
            start += len;
        }
    }

    #[test]
    fn agrees_with_redis_protocol_resp2(v in resp2_value(), chunk in 1usize..32) {
        let (buf, _) = encode_all(std::slice::from_ref(&v), false, &[false]);
        let (oracle, consumed) = redis_protocol::resp2::decode::decode(&buf).unwrap().unwrap();
        prop_assert_eq!(oracle, resp2_oracle(&v));
        let info = scan_chunked(&buf, &[chunk], limits())[0].clone().unwrap();
        prop_assert_eq!(info.len, consumed);
        prop_assert_eq!(info.kind, buf[0]);
        prop_assert_eq!(decode_value(&buf, limits()).unwrap(), v);
    }

    #[test]
    fn agrees_with_redis_protocol_resp3(v in resp3_value(), chunk in 1usize..32) {
        let (buf, _) = encode_all(std::slice::from_ref(&v), true, &[false]);
        let (oracle, consumed) = redis_protocol::resp3::decode::complete::decode(&buf).unwrap().unwrap();
        prop_assert_eq!(oracle, resp3_oracle(&v));
        let info = scan_chunked(&buf, &[chunk], limits())[0].clone().unwrap();
        prop_assert_eq!(info.len, consumed);
        prop_assert_eq!(decode_value(&buf, limits()).unwrap(), v);
        for cut in 0..buf.len() {
            prop_assert_eq!(redis_protocol::resp3::decode::complete::decode(&buf[..cut]).unwrap(), None);
            prop_assert_eq!(scan(&buf[..cut]), Ok(None));
        }
    }

    #[test]
    fn commands_round_trip(
        commands in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6), 1..5),
        chunks in proptest::collection::vec(1usize..40, 1..10),
    ) {
        let mut out = BytesMut::new();
        for args in &commands {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            encode_command(&mut out, &args);
        }
        let parsed = parse_one_shot(&out, limits());
        prop_assert_eq!(parse_chunked(&out, &chunks, limits()), parsed.clone());
        let mut start = 0;
        for (args, cmd) in commands.iter().zip(parsed) {
            let cmd = cmd.unwrap();
            let frame = &out[start..start + cmd.len];
            let got: Vec<Vec<u8>> = (0..cmd.argc()).map(|i| cmd.arg(frame, i).to_vec()).collect();
            prop_assert_eq!(&got, args);
            start += cmd.len;
        }
        prop_assert_eq!(start, out.len());
    }

    /// What the fuzz target checks, on random and RESP-flavoured bytes.
    #[test]
    fn arbitrary_bytes_incremental_equals_one_shot(
        parts in proptest::collection::vec(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::sample::select(vec![
                b"\r\n".to_vec(), b"*2\r\n".to_vec(), b"$3\r\n".to_vec(), b"|1\r\n".to_vec(), b"%1\r\n".to_vec(),
                b"+OK".to_vec(), b":-1".to_vec(), b"=5\r\ntxt:a".to_vec(), b"\"a\\x4".to_vec(), b"'".to_vec(), b"\n".to_vec(),
            ]),
        ], 0..24),
        chunks in proptest::collection::vec(1usize..16, 1..8),
    ) {
        let buf = parts.concat();
        let small = Limits { max_bulk_len: 16, max_array_len: 4, max_depth: 3, max_inline_len: 12 };
        for limits in [limits(), small] {
            let frames = scan_one_shot(&buf, limits);
            prop_assert_eq!(scan_chunked(&buf, &chunks, limits), frames.clone());
            let mut start = 0;
            for f in frames.into_iter().flatten() {
                prop_assert!(decode_value(&buf[start..start + f.len], limits).is_ok());
                start += f.len;
            }
            prop_assert_eq!(parse_chunked(&buf, &chunks, limits), parse_one_shot(&buf, limits));
        }
    }
}
