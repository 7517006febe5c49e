use super::*;

const NONCE: &[u8; 20] = b"abcdefghijklmnopqrst";

// Vectors computed with PyMySQL 2.2.8's `_auth.scramble_native_password` and
// `_auth.scramble_caching_sha2` for password "secret" and the nonce above.
const NATIVE_SECRET: [u8; 20] =
    *b"\x88\x17\xc5\x0f\xa7\x79\xda\xef\x01\x0e\xe7\x57\x78\x25\xb0\x84\x7d\xf9\x84\x2e";
const SHA2_SECRET: [u8; 32] = *b"\xc7\x6e\x28\x98\x61\x2a\x4c\xf0\x42\xc7\x7f\xa8\xc4\x70\x2c\x4c\x64\xc0\xc2\xc5\x57\xc5\x3c\x4d\x75\x59\x5a\xaa\x6a\xba\xe8\x09";

/// A 1024-bit throwaway key (generated with `openssl genrsa 1024`) so tests stay fast.
const TEST_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBANj4tfqsAfvxWCd3
TvHpDjGgD3nnXz2vfdqo0HzxRRqEg+SEmjTkSpHxs/KWz+wJReQdngKhoeyjm6i9
luX7C9avmmVZSwCrBCa+mql/3VNCVphhOSYlxsjFIABjGdCSBZnl/lxfbaUVIpHQ
LgSeF1jppuugbiS0qSFKWFOe8uiLAgMBAAECgYBSpqOD4uQ6mhwvpIZBJrtOch+T
G20vbVtu4SHShoIBcPthIJYxkclKQR2ASqzXyEyEcjfP3sx0/Xn9VINYBkLiiJqB
3gHaI2YR6UQ+vhChVp391pUdeBHpRMmiegzpBAqOS3ohe2ZpwlvKQJw1FQb7/to0
BFUWFNgBidB2cvnAqQJBAO/WcQJPVHMwENWhNIRHZq643uoCc17ZCG47ziYDq+ol
XOSFikfQOQAnm9eeRvdyUwVNDONQbbIFvYW9V8KXgncCQQDnl8tbrBZRPJMFHvzh
bEbs2zxWDTLNAXJL7jOoLdR/emi64Gkc6uHIpslsArSf7WXlG5th9CuVIY4ujavF
DpuNAkEAv4u/g73Bz6EiwMtXuxGfY4nIlpJQe/7P6eIfuWKTSZR/hQ9WKhaVf5ci
suj4+qU2wvQPh/hzM4u8GnTnA0Wn7wJBAKIDT9EOvwIPpS4k8nVkgO17pWbxjsNZ
qrKxrdOOVCTl5lQtX3tKWa879paoAeILeoffW0EYRlDqi4PHug193ZUCQCltd5Uf
pJMld9FYBOcOukpnT1O4Izbm/3FwgfJDtn8wLxPPsbsARjv7/KMAW2aDi5mPqkJI
YOotoW4FKqV/6Ec=
-----END PRIVATE KEY-----
";

/// PyMySQL's `_auth.sha2_rsa_encrypt(b"s3cr\xc3\xa9t", NONCE, <TEST_KEY's public PEM>)`.
const PYMYSQL_CIPHERTEXT: &[u8] = b"\xbc\x68\xa3\xd2\x3e\xc2\xbe\xc8\x2d\xca\x5a\x69\x43\xf2\x90\x81\xd3\x8f\xe5\xf9\xbd\xbe\x14\x40\x5b\x5b\x3a\xbc\xc8\xb8\xf3\x95\x93\x62\x74\x63\x9d\x10\xaa\x78\xb7\x75\x16\xcc\xac\x5e\xa2\x47\x73\x3e\xd3\x79\xd3\xc1\x07\x1a\xa9\x5b\xc7\x4c\xad\x70\xaa\x26\x4b\x1f\xc2\x98\xd6\x49\x38\xe6\x38\x8e\x77\x27\x34\xda\xa0\x8e\x69\xe6\xa6\x2c\xbf\xe1\x13\x1d\xb5\x9c\xc0\x50\x99\xba\x59\x63\xaa\x3c\x07\xf1\x2b\x14\xa1\x5d\xf8\x8b\x41\x95\xad\x48\x5d\xa4\x1e\x85\x4e\x29\xd4\x21\xa4\xb8\x05\xdb\x0a\xee\xed\x47\x50\x3b";

const TEST_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDY+LX6rAH78Vgnd07x6Q4xoA95
5189r33aqNB88UUahIPkhJo05EqR8bPyls/sCUXkHZ4CoaHso5uovZbl+wvWr5pl
WUsAqwQmvpqpf91TQlaYYTkmJcbIxSAAYxnQkgWZ5f5cX22lFSKR0C4EnhdY6abr
oG4ktKkhSlhTnvLoiwIDAQAB
-----END PUBLIC KEY-----
";

#[test]
fn native_scramble_matches_pymysql() {
    assert_eq!(native_scramble(b"secret", NONCE), NATIVE_SECRET);
    // A trailing NUL on the nonce (as in auth-switch data) changes nothing.
    assert_eq!(
        native_scramble(b"secret", b"abcdefghijklmnopqrst\0"),
        NATIVE_SECRET
    );
}

#[test]
fn native_verify_accepts_only_the_right_password() {
    assert!(native_verify(b"secret", NONCE, &NATIVE_SECRET));
    assert!(!native_verify(b"Secret", NONCE, &NATIVE_SECRET));
    assert!(!native_verify(
        b"secret",
        b"abcdefghijklmnopqrsX",
        &NATIVE_SECRET
    ));
    assert!(!native_verify(b"secret", NONCE, &NATIVE_SECRET[..19]));
    assert!(!native_verify(b"secret", NONCE, b""));
}

#[test]
fn native_verify_from_stored_hash() {
    let hash = native_password_hash(b"secret");
    // The `*HEX` form MySQL shows for PASSWORD('secret').
    let hex: String = hash.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(hex, "14E65567ABDB5135D0CFD9A70B3032C179A49EE7");
    assert!(native_verify_hash(&hash, NONCE, &NATIVE_SECRET));
    assert!(!native_verify_hash(&hash, NONCE, &[0; 20]));
}

#[test]
fn empty_passwords_send_empty_responses() {
    assert!(native_verify(b"", NONCE, b""));
    assert!(!native_verify(b"", NONCE, &NATIVE_SECRET));
    assert!(sha2_verify(b"", NONCE, b""));
    assert!(!sha2_verify(b"", NONCE, &SHA2_SECRET));
}

#[test]
fn sha2_scramble_matches_pymysql() {
    assert_eq!(sha2_scramble(b"secret", NONCE), SHA2_SECRET);
    assert!(sha2_verify(b"secret", NONCE, &SHA2_SECRET));
    assert!(!sha2_verify(b"secreT", NONCE, &SHA2_SECRET));
    assert!(!sha2_verify(b"secret", NONCE, &SHA2_SECRET[..31]));
}

#[test]
fn full_auth_markers() {
    assert_eq!(FAST_AUTH_SUCCESS_PACKET, [0x01, 0x03]);
    assert_eq!(PERFORM_FULL_AUTH_PACKET, [0x01, 0x04]);
    assert_eq!(cleartext_password(b"pw\0"), b"pw");
    assert_eq!(cleartext_password(b"pw"), b"pw");
}

#[test]
fn nonces_avoid_nul_and_dollar_and_differ() {
    let a = new_nonce();
    assert!(a.iter().all(|&b| (1..=127).contains(&b) && b != b'$'));
    assert_ne!(a, new_nonce());
}

#[test]
fn decrypts_what_pymysql_encrypted() {
    let key = RsaKeyPair::from_pkcs8_pem(TEST_KEY).unwrap();
    assert_eq!(key.public_pem(), TEST_PUBLIC_PEM);
    let password = key.decrypt_password(PYMYSQL_CIPHERTEXT, NONCE).unwrap();
    assert_eq!(password, "s3cr\u{e9}t".as_bytes());
}

#[test]
fn encrypt_then_decrypt_round_trips() {
    let key = RsaKeyPair::from_pkcs8_pem(TEST_KEY).unwrap();
    let long = vec![b'x'; 50]; // longer than the nonce: XOR cycles
    for password in [&b"hunter2"[..], b"", &long] {
        let ct = encrypt_password(key.public_pem(), password, NONCE).unwrap();
        assert_eq!(key.decrypt_password(&ct, NONCE).unwrap(), password);
    }
}

#[test]
fn rsa_errors_are_reported() {
    let key = RsaKeyPair::from_pkcs8_pem(TEST_KEY).unwrap();
    assert!(matches!(
        key.decrypt_password(b"garbage", NONCE),
        Err(AuthError::Decrypt(_))
    ));
    assert!(matches!(
        encrypt_password("not a pem", b"x", NONCE),
        Err(AuthError::Key(_))
    ));
    // 1024-bit OAEP-SHA1 carries at most 86 bytes.
    let too_long = vec![b'x'; 100];
    assert!(matches!(
        encrypt_password(key.public_pem(), &too_long, NONCE),
        Err(AuthError::Encrypt(_))
    ));
    assert!(matches!(
        RsaKeyPair::from_pkcs8_pem("nope"),
        Err(AuthError::Key(_))
    ));
}

#[test]
#[ignore = "2048-bit key generation takes seconds in debug builds"]
fn generates_a_2048_bit_key() {
    let key = RsaKeyPair::generate().unwrap();
    assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
    let ct = encrypt_password(key.public_pem(), b"pw", NONCE).unwrap();
    assert_eq!(ct.len(), 256);
    assert_eq!(key.decrypt_password(&ct, NONCE).unwrap(), b"pw");
}
