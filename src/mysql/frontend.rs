//! The client's handshake, with Tidepool as the server: greet with its own nonce and the
//! upstream's real version string, read the client's response, authenticate it against the
//! pool's `[[pool.users]]` (`mysql_native_password`, or `caching_sha2_password`'s fast path —
//! the proxy knows the password, so it can always verify the scramble), answer 1045 otherwise.
//! No byte from a client reaches an upstream before this succeeds.

use tokio::io::{AsyncRead, AsyncWrite};

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
pub const OFFERED: u64 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_CONNECT_ATTRS
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF
    | CLIENT_LOCAL_FILES;

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

pub async fn handshake<R, W>(
    reader: &mut PacketReader<R>,
    writer: &mut PacketWriter<W>,
    users: &[UserConfig],
    facts: &ServerFacts,
    connection_id: u32,
    client_host: &str,
) -> Result<Hello, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let nonce = auth::new_nonce();
    greet(writer, facts, connection_id, nonce).await?;
    let response = read_response(reader).await?;
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
    writer.seq = 2;
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

async fn greet<W: AsyncWrite + Unpin>(
    writer: &mut PacketWriter<W>,
    facts: &ServerFacts,
    connection_id: u32,
    nonce: [u8; auth::NONCE_LEN],
) -> Result<(), IoError> {
    let greeting = HandshakeV10 {
        server_version: facts.version.clone(),
        connection_id,
        nonce,
        capabilities: Capabilities::from_parts(OFFERED as u32, 0),
        charset: facts.charset,
        status: facts.status,
        auth_plugin: MYSQL_NATIVE_PASSWORD.to_string(),
    };
    writer.seq = 0;
    writer.send_with(|o| greeting.encode(o)).await?;
    writer.flush().await
}

async fn read_response<R: AsyncRead + Unpin>(
    reader: &mut PacketReader<R>,
) -> Result<HandshakeResponse41, HandshakeError> {
    let packet = reader.read().await?;
    let bad = |why: &str| {
        HandshakeError::Refused(ErrPacket::new(
            1043,
            b"08S01",
            format!("Bad handshake: {why}"),
        ))
    };
    if SslRequest::is_ssl_request(&packet.payload) {
        return Err(bad("TLS was not offered"));
    }
    HandshakeResponse41::decode(&packet.payload).map_err(|e| bad(&e.to_string()))
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
