//! The client's handshake, with Tidepool as the server: greet with its own nonce and the
//! upstream's real version string, read the client's response, authenticate it against the
//! pool's `[[pool.users]]` (`mysql_native_password`, or `caching_sha2_password`'s fast path —
//! the proxy knows the password, so it can always verify the scramble), answer 1045 otherwise.
//! No byte from a client reaches an upstream before this succeeds.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use super::io::Packet;
use super::protocol::packet::{HEADER_LEN, decode_packet, write_packet};
use crate::server::{ClientReader, ClientStream, ClientWriter};
use crate::tls::Prefixed;

use super::io::{IoError, PacketReader, PacketWriter};
use super::protocol::auth::{self, CACHING_SHA2_PASSWORD, MYSQL_NATIVE_PASSWORD};
use super::protocol::capabilities::*;
use super::protocol::handshake::{
    AuthMoreData, AuthSwitchRequest, HandshakeResponse41, HandshakeV10, SslRequest,
};
use super::protocol::response::ErrPacket;
use super::upstream::ServerFacts;
use crate::config::UserConfig;

/// What the proxy offers clients. Not offered: TLS (not built yet), compression, query
/// attributes (MariaDB has none), and `CLIENT_INTERACTIVE`/`IGNORE_SPACE` (they would change
/// server-side settings the pool does not carry).
pub const OFFERED: u64 =
    super::upstream::WANTED | CLIENT_FOUND_ROWS | CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS;

/// An authenticated client.
#[derive(Debug)]
pub struct Hello {
    pub caps: Capabilities,
    pub user: UserConfig,
    pub database: Option<String>,
    pub charset: u8,
    /// The nonce of this connection's handshake (`COM_CHANGE_USER` scrambles with it too).
    pub nonce: [u8; auth::NONCE_LEN],
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Told to the client (1045, 1043) before closing.
    #[error("{}", .0.message)]
    Refused(ErrPacket),
    #[error("{0}")]
    Io(#[from] IoError),
}

/// A client's socket after the greeting: plain, or upgraded to TLS if it asked (and the pool
/// offers it), with its handshake response already read.
pub struct Opened {
    pub reader: PacketReader<ClientReader>,
    pub writer: PacketWriter<ClientWriter>,
    pub nonce: [u8; auth::NONCE_LEN],
    pub response: Packet,
    pub tls: bool,
}

/// Greets the client and reads its first answer; an SSL request upgrades the socket to TLS
/// first (bytes of the ClientHello that came with it are replayed into the TLS stream).
pub async fn open(
    mut stream: ClientStream,
    tls: Option<&TlsAcceptor>,
    facts: &ServerFacts,
    connection_id: u32,
    max_payload: usize,
    timeout: Duration,
) -> Result<Opened, HandshakeError> {
    let nonce = auth::new_nonce();
    let mut offered = OFFERED;
    if tls.is_some() {
        offered |= CLIENT_SSL;
    }
    let mut out = BytesMut::new();
    greeting(facts, connection_id, nonce, offered).encode(&mut out);
    let mut framed = BytesMut::new();
    write_packet(&mut framed, 0, &out);
    stream.write_all(&framed).await.map_err(IoError::from)?;
    // A client that sends nothing (or an HTTP request, read as a 5 MB length) must not hold a
    // max_clients slot for ever.
    let first = tokio::time::timeout(timeout, read_first_packet(&mut stream)).await;
    let (first, rest) = match first {
        Ok(Ok(x)) => x,
        Ok(Err(HandshakeError::Refused(err))) => return Err(refuse(stream, err).await),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(refuse(
                stream,
                bad("no handshake response within handshake_timeout"),
            )
            .await);
        }
    };
    if !SslRequest::is_ssl_request(&first.payload) {
        let (r, w) = stream.into_split();
        return Ok(Opened {
            reader: PacketReader::with_buffered(r, max_payload, rest),
            writer: PacketWriter::new(w),
            nonce,
            response: first,
            tls: false,
        });
    }
    let Some(acceptor) = tls else {
        return Err(refuse(stream, bad("TLS was not offered")).await);
    };
    let upgrade = async {
        let upgraded = acceptor
            .accept(Prefixed::new(rest.freeze(), stream))
            .await
            .map_err(|e| bad_handshake(&format!("TLS handshake failed: {e}")))?;
        let (r, w) = tokio::io::split(upgraded);
        let mut reader = PacketReader::new(Box::new(r) as ClientReader, HANDSHAKE_MAX);
        let response = reader.read().await?;
        reader.set_max_payload(max_payload);
        Ok::<_, HandshakeError>((reader, w, response))
    };
    let (reader, w, response) = tokio::time::timeout(timeout, upgrade)
        .await
        .map_err(|_| bad_handshake("TLS handshake not finished within handshake_timeout"))??;
    Ok(Opened {
        reader,
        writer: PacketWriter::new(Box::new(w) as ClientWriter),
        nonce,
        response,
        tls: true,
    })
}

/// The handshake response is a few hundred bytes; anything claiming more is not a MySQL
/// client.
const HANDSHAKE_MAX: usize = 64 * 1024;

/// The first packet (seq 1), read straight from the socket, and whatever followed it.
async fn read_first_packet(
    stream: &mut ClientStream,
) -> Result<(Packet, BytesMut), HandshakeError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let frame =
            decode_packet(&buf, HANDSHAKE_MAX).map_err(|e| bad_handshake(&e.to_string()))?;
        if let Some(frame) = frame {
            if frame.seq != 1 {
                return Err(bad_handshake("packet out of order"));
            }
            let mut wire = buf.split_to(frame.wire_len());
            let payload = wire.split_off(HEADER_LEN).freeze();
            return Ok((
                Packet {
                    seq: frame.seq,
                    payload,
                },
                buf,
            ));
        }
        if stream.read_buf(&mut buf).await.map_err(IoError::from)? == 0 {
            return Err(HandshakeError::Io(IoError::Closed));
        }
    }
}

/// Tells a client its handshake is refused (as the answer to its first packet), then closes.
async fn refuse(mut stream: ClientStream, err: ErrPacket) -> HandshakeError {
    let mut payload = BytesMut::new();
    err.encode(
        &mut payload,
        Capabilities::from_parts(CLIENT_PROTOCOL_41 as u32, 0),
    );
    let mut out = BytesMut::new();
    write_packet(&mut out, 2, &payload);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
    HandshakeError::Refused(err)
}

fn bad(why: &str) -> ErrPacket {
    ErrPacket::new(1043, b"08S01", format!("Bad handshake: {why}"))
}

fn bad_handshake(why: &str) -> HandshakeError {
    HandshakeError::Refused(bad(why))
}

/// Checks the client's handshake response (already read) against the pool's users.
pub async fn authenticate<R, W>(
    reader: &mut PacketReader<R>,
    writer: &mut PacketWriter<W>,
    packet: &Packet,
    nonce: [u8; auth::NONCE_LEN],
    users: &[UserConfig],
    client_host: &str,
) -> Result<Hello, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if SslRequest::is_ssl_request(&packet.payload) {
        return Err(bad_handshake("TLS was not offered"));
    }
    let response =
        HandshakeResponse41::decode(&packet.payload).map_err(|e| bad_handshake(&e.to_string()))?;
    writer.seq = packet.seq.wrapping_add(1);
    let caps = Capabilities::from_parts(response.capabilities.lower() & OFFERED as u32, 0);
    let denied = |using_password: bool| {
        HandshakeError::Refused(ErrPacket::new(
            1045,
            b"28000",
            format!(
                "Access denied for user '{}'@'{client_host}' (using password: {})",
                response.username,
                if using_password { "YES" } else { "NO" }
            ),
        ))
    };
    let using_password = !response.auth_response.is_empty();
    let Some(user) = users.iter().find(|u| u.user == response.username) else {
        return Err(denied(using_password));
    };
    let password = user.password.expose().as_bytes();
    let verified = match response
        .auth_plugin
        .as_deref()
        .unwrap_or(MYSQL_NATIVE_PASSWORD)
    {
        MYSQL_NATIVE_PASSWORD => verify_native(password, &nonce, &response.auth_response),
        CACHING_SHA2_PASSWORD => {
            let ok = if password.is_empty() {
                response.auth_response.is_empty()
            } else {
                auth::sha2_verify(password, &nonce, &response.auth_response)
            };
            if ok {
                writer
                    .send_with(|o| {
                        AuthMoreData {
                            data: vec![auth::CACHING_SHA2_FAST_AUTH_SUCCESS],
                        }
                        .encode(o)
                    })
                    .await?;
            }
            ok
        }
        _ => switch_to_native(reader, writer, password, &nonce).await?,
    };
    if !verified {
        return Err(denied(using_password));
    }
    Ok(Hello {
        caps,
        user: user.clone(),
        database: response
            .database
            .filter(|d| !d.is_empty() && caps.contains(CLIENT_CONNECT_WITH_DB)),
        charset: response.charset,
        nonce,
    })
}

/// A `COM_CHANGE_USER` request, authenticated: the new user, schema and charset.
#[derive(Debug)]
pub struct ChangeUser {
    pub user: UserConfig,
    pub database: Option<String>,
    pub charset: Option<u8>,
}

/// Reads and verifies `COM_CHANGE_USER` (`payload` includes the command byte) against the
/// pool's users, with the connection's handshake nonce.
pub fn change_user(
    payload: &[u8],
    caps: Capabilities,
    users: &[UserConfig],
    nonce: &[u8],
    client_host: &str,
) -> Result<ChangeUser, ErrPacket> {
    use super::protocol::packet::Reader;
    let bad = |_| ErrPacket::new(1047, b"08S01", "tidepool: malformed COM_CHANGE_USER");
    let mut r = Reader::new(payload.get(1..).unwrap_or_default());
    let name = String::from_utf8_lossy(r.nul_bytes("user").map_err(bad)?).into_owned();
    let response = if caps.contains(CLIENT_SECURE_CONNECTION) {
        let len = r.u8("auth length").map_err(bad)?;
        r.bytes(usize::from(len), "auth response")
            .map_err(bad)?
            .to_vec()
    } else {
        r.nul_bytes("auth response").map_err(bad)?.to_vec()
    };
    let database = String::from_utf8_lossy(r.nul_or_rest()).into_owned();
    let charset = if r.remaining() >= 2 {
        r.u16("charset").ok().map(|c| c as u8)
    } else {
        None
    };
    let plugin = if caps.contains(CLIENT_PLUGIN_AUTH) && !r.is_empty() {
        String::from_utf8_lossy(r.nul_or_rest()).into_owned()
    } else {
        MYSQL_NATIVE_PASSWORD.to_string()
    };
    let denied = ErrPacket::new(
        1045,
        b"28000",
        format!(
            "Access denied for user '{name}'@'{client_host}' (using password: {})",
            if response.is_empty() { "NO" } else { "YES" }
        ),
    );
    let user = users
        .iter()
        .find(|u| u.user == name)
        .ok_or_else(|| denied.clone())?;
    let password = user.password.expose().as_bytes();
    let verified = match plugin.as_str() {
        CACHING_SHA2_PASSWORD if !password.is_empty() => {
            auth::sha2_verify(password, nonce, &response)
        }
        _ => verify_native(password, nonce, &response),
    };
    if !verified {
        return Err(denied);
    }
    Ok(ChangeUser {
        user: user.clone(),
        database: (!database.is_empty()).then_some(database),
        charset,
    })
}

fn greeting(
    facts: &ServerFacts,
    connection_id: u32,
    nonce: [u8; auth::NONCE_LEN],
    offered: u64,
) -> HandshakeV10 {
    HandshakeV10 {
        server_version: facts.version.clone(),
        connection_id,
        nonce,
        capabilities: Capabilities::from_parts(offered as u32, 0),
        charset: facts.charset,
        status: facts.status,
        auth_plugin: MYSQL_NATIVE_PASSWORD.to_string(),
    }
}

fn verify_native(password: &[u8], nonce: &[u8], response: &[u8]) -> bool {
    if password.is_empty() {
        response.is_empty()
    } else {
        auth::native_verify(password, nonce, response)
    }
}

/// The client answered with a plugin the proxy does not verify: ask for
/// `mysql_native_password` instead (the client's libraries all have it).
async fn switch_to_native<R, W>(
    reader: &mut PacketReader<R>,
    writer: &mut PacketWriter<W>,
    password: &[u8],
    nonce: &[u8],
) -> Result<bool, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let switch = AuthSwitchRequest {
        plugin: MYSQL_NATIVE_PASSWORD.to_string(),
        data: nonce.to_vec(),
    };
    writer.send_with(|o| switch.encode(o)).await?;
    writer.flush().await?;
    let reply = reader.read().await?;
    writer.seq = reply.seq.wrapping_add(1);
    Ok(verify_native(password, nonce, &reply.payload))
}
