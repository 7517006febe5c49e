//! Logging in upstream with `caching_sha2_password` when the server demands full
//! authentication (MySQL 8 after a restart, before its cache is warm): the RSA public-key
//! exchange over plain TCP. MariaDB has no caching_sha2, so a scripted upstream plays MySQL 8
//! here, checking every step the way the server does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tidepool::mysql::protocol::Capabilities;
use tidepool::mysql::protocol::auth::{self, RsaKeyPair};
use tidepool::mysql::protocol::capabilities::*;
use tidepool::mysql::protocol::handshake::{AuthMoreData, HandshakeResponse41, HandshakeV10};
use tidepool::mysql::protocol::packet::{decode_packet, write_packet};
use tidepool::mysql::protocol::response::{ErrPacket, OkPacket};
use tidepool::mysql::upstream::{Login, MysqlConn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "s3cret-for-mysql8";

/// What the scripted server saw.
#[derive(Debug, Default)]
struct Seen {
    fast_path_scramble_ok: bool,
    asked_for_key: bool,
    decrypted_password: Option<String>,
    commands: usize,
}

struct Wire {
    s: TcpStream,
    buf: BytesMut,
}

impl Wire {
    async fn read(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some(f) = decode_packet(&self.buf, 1 << 24).unwrap() {
                let wire = self.buf.split_to(f.wire_len());
                return (f.seq, wire[f.payload].to_vec());
            }
            assert!(
                self.s.read_buf(&mut self.buf).await.unwrap() > 0,
                "the proxy hung up"
            );
        }
    }

    async fn send(&mut self, seq: u8, payload: &[u8]) {
        let mut out = BytesMut::new();
        write_packet(&mut out, seq, payload);
        self.s.write_all(&out).await.unwrap();
    }
}

/// One connection of a MySQL 8 server with an empty auth cache.
async fn mysql8(stream: TcpStream, key: Arc<RsaKeyPair>, seen: Arc<Mutex<Seen>>) {
    let mut w = Wire {
        s: stream,
        buf: BytesMut::new(),
    };
    let nonce = auth::new_nonce();
    let caps = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_STATEMENTS
        | CLIENT_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CLIENT_SESSION_TRACK
        | CLIENT_DEPRECATE_EOF;
    let mut greeting = BytesMut::new();
    HandshakeV10 {
        server_version: "8.4.0".into(),
        connection_id: 77,
        nonce,
        capabilities: Capabilities::from_parts(caps as u32, 0),
        charset: 255,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: "caching_sha2_password".into(),
    }
    .encode(&mut greeting);
    w.send(0, &greeting).await;
    let (_, response) = w.read().await;
    let response = HandshakeResponse41::decode(&response).unwrap();
    seen.lock().unwrap().fast_path_scramble_ok =
        auth::sha2_verify(PASSWORD.as_bytes(), &nonce, &response.auth_response);
    let mut more = BytesMut::new();
    AuthMoreData {
        data: vec![auth::CACHING_SHA2_PERFORM_FULL_AUTH],
    }
    .encode(&mut more);
    w.send(2, &more).await;
    let (_, request) = w.read().await;
    seen.lock().unwrap().asked_for_key = request == [auth::CACHING_SHA2_REQUEST_PUBLIC_KEY];
    let mut pem = BytesMut::new();
    AuthMoreData {
        data: key.public_pem().as_bytes().to_vec(),
    }
    .encode(&mut pem);
    w.send(4, &pem).await;
    let (_, encrypted) = w.read().await;
    let password = key
        .decrypt_password(&encrypted, &nonce)
        .ok()
        .map(|p| String::from_utf8_lossy(&p).into_owned());
    let accepted = password.as_deref() == Some(PASSWORD);
    seen.lock().unwrap().decrypted_password = password;
    let session = Capabilities::from_parts(caps as u32, 0);
    let mut reply = BytesMut::new();
    if accepted {
        OkPacket {
            status: SERVER_STATUS_AUTOCOMMIT,
            ..OkPacket::default()
        }
        .encode(&mut reply, session);
    } else {
        ErrPacket::new(1045, b"28000", "Access denied").encode(&mut reply, session);
    }
    w.send(6, &reply).await;
    // The proxy's session setup: every command gets an OK (with DEPRECATE_EOF, COM_SET_OPTION's
    // EOF is an OK too).
    loop {
        if w.s
            .read_buf(&mut w.buf)
            .await
            .map(|n| n == 0)
            .unwrap_or(true)
            && w.buf.is_empty()
        {
            return;
        }
        while let Some(f) = decode_packet(&w.buf, 1 << 24).unwrap() {
            let _ = w.buf.split_to(f.wire_len());
            seen.lock().unwrap().commands += 1;
            let mut ok = BytesMut::new();
            OkPacket {
                status: SERVER_STATUS_AUTOCOMMIT,
                ..OkPacket::default()
            }
            .encode(&mut ok, session);
            w.send(1, &ok).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_authentication_sends_the_password_rsa_encrypted_with_the_servers_key() {
    let key = Arc::new(RsaKeyPair::generate_bits(1024).unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = {
        let (key, seen) = (key.clone(), seen.clone());
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            mysql8(s, key, seen).await;
        })
    };
    let login = Login {
        addr: addr.to_string(),
        user: "app".into(),
        password: PASSWORD.into(),
        found_rows: false,
        connect_timeout: Duration::from_secs(10),
    };
    let (conn, facts) = MysqlConn::connect(&login)
        .await
        .expect("logged in through full authentication");
    assert_eq!(facts.version, "8.4.0");
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let seen = seen.lock().unwrap();
    assert!(
        seen.fast_path_scramble_ok,
        "the first answer was the SHA-256 scramble"
    );
    assert!(
        seen.asked_for_key,
        "over plain TCP the proxy asks for the server's public key"
    );
    assert_eq!(
        seen.decrypted_password.as_deref(),
        Some(PASSWORD),
        "and sends the password encrypted with it"
    );
    assert!(seen.commands >= 2, "then sets its session up: {seen:?}");
}
