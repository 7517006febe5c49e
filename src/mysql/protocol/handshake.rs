//! Connection-phase packets: the upstream's greeting (HandshakeV10), the client's SSL request and
//! HandshakeResponse41, and the auth-switch / more-data packets that follow. Every type encodes
//! and decodes, because the proxy plays the server to clients and the client to upstreams.

use bytes::{BufMut, BytesMut};

use super::capabilities::{
    CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    Capabilities,
};
use super::packet::{Reader, put_lenenc_bytes, put_lenenc_int, put_nul_bytes, utf8};
use super::response::{EOF_HEADER, ERR_HEADER, ErrPacket, OK_HEADER, OkPacket};
use super::{ProtocolError, auth::NONCE_LEN};

pub const PROTOCOL_VERSION: u8 = 10;
/// Header of [`AuthMoreData`].
pub const AUTH_MORE_DATA_HEADER: u8 = 0x01;
/// Header of [`AuthSwitchRequest`] (shared with EOF/OK-as-EOF; context tells them apart).
pub const AUTH_SWITCH_HEADER: u8 = EOF_HEADER;
/// Length of an SSL request: the fixed prefix of a HandshakeResponse41.
pub const SSL_REQUEST_LEN: usize = 32;

/// The server's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    pub server_version: String,
    pub connection_id: u32,
    pub nonce: [u8; NONCE_LEN],
    pub capabilities: Capabilities,
    pub charset: u8,
    pub status: u16,
    pub auth_plugin: String,
}

impl HandshakeV10 {
    pub fn encode(&self, out: &mut BytesMut) {
        let caps = self.capabilities;
        out.put_u8(PROTOCOL_VERSION);
        put_nul_bytes(out, self.server_version.as_bytes());
        out.put_u32_le(self.connection_id);
        out.put_slice(&self.nonce[..8]);
        out.put_u8(0);
        out.put_u16_le(caps.lower() as u16);
        out.put_u8(self.charset);
        out.put_u16_le(self.status);
        out.put_u16_le((caps.lower() >> 16) as u16);
        // The nonce length includes the NUL that terminates its second part.
        out.put_u8(if caps.contains(CLIENT_PLUGIN_AUTH) {
            NONCE_LEN as u8 + 1
        } else {
            0
        });
        out.put_bytes(0, 6);
        out.put_u32_le(if caps.uses_mariadb_ext() {
            caps.mariadb_ext()
        } else {
            0
        });
        if caps.contains(CLIENT_SECURE_CONNECTION) {
            put_nul_bytes(out, &self.nonce[8..]);
        }
        if caps.contains(CLIENT_PLUGIN_AUTH) {
            put_nul_bytes(out, self.auth_plugin.as_bytes());
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        match r.u8("handshake protocol version")? {
            PROTOCOL_VERSION => {}
            ERR_HEADER => {
                return Err(ProtocolError::Unexpected {
                    context: "instead of handshake",
                    header: ERR_HEADER,
                });
            }
            _ => return Err(ProtocolError::Unsupported("handshake protocol version")),
        }
        let server_version =
            String::from_utf8_lossy(r.nul_bytes("handshake server version")?).into_owned();
        let connection_id = r.u32("handshake connection id")?;
        let mut nonce = [0; NONCE_LEN];
        nonce[..8].copy_from_slice(r.bytes(8, "handshake nonce")?);
        r.skip(1, "handshake filler")?;
        let lower = u32::from(r.u16("handshake capabilities")?);
        let charset = r.u8("handshake charset")?;
        let status = r.u16("handshake status")?;
        let lower = lower | u32::from(r.u16("handshake capabilities")?) << 16;
        let nonce_len = usize::from(r.u8("handshake nonce length")?);
        r.skip(6, "handshake reserved")?;
        let ext = r.u32("handshake reserved")?;
        let mut capabilities = Capabilities::from_parts(lower, 0);
        if capabilities.uses_mariadb_ext() {
            capabilities = Capabilities::from_parts(lower, ext);
        }
        if !capabilities.contains(CLIENT_SECURE_CONNECTION) {
            return Err(ProtocolError::Unsupported("pre-4.1 authentication"));
        }
        let part2 = r.bytes(nonce_len.saturating_sub(8).max(13), "handshake nonce")?;
        nonce[8..].copy_from_slice(
            part2
                .get(..12)
                .ok_or(ProtocolError::Malformed("handshake nonce"))?,
        );
        let auth_plugin = if capabilities.contains(CLIENT_PLUGIN_AUTH) {
            // Some servers omit the final NUL (MySQL bug #59453).
            utf8(r.nul_or_rest(), "handshake auth plugin")?
        } else {
            String::new()
        };
        Ok(Self {
            server_version,
            connection_id,
            nonce,
            capabilities,
            charset,
            status,
            auth_plugin,
        })
    }
}

/// The 32-byte prefix shared by the SSL request and HandshakeResponse41.
fn decode_prefix(r: &mut Reader<'_>) -> Result<(Capabilities, u32, u8), ProtocolError> {
    let lower = r.u32("client capabilities")?;
    let max_packet = r.u32("client max packet")?;
    let charset = r.u8("client charset")?;
    r.skip(19, "client filler")?;
    let ext = r.u32("client filler")?;
    let mut caps = Capabilities::from_parts(lower, 0);
    if caps.uses_mariadb_ext() {
        caps = Capabilities::from_parts(lower, ext);
    }
    if !caps.contains(CLIENT_PROTOCOL_41) {
        return Err(ProtocolError::Unsupported("pre-4.1 client"));
    }
    Ok((caps, max_packet, charset))
}

fn encode_prefix(out: &mut BytesMut, caps: Capabilities, max_packet: u32, charset: u8) {
    out.put_u32_le(caps.lower());
    out.put_u32_le(max_packet);
    out.put_u8(charset);
    out.put_bytes(0, 19);
    out.put_u32_le(if caps.uses_mariadb_ext() {
        caps.mariadb_ext()
    } else {
        0
    });
}

/// The client asks to switch to TLS before sending its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    pub capabilities: Capabilities,
    pub max_packet: u32,
    pub charset: u8,
}

impl SslRequest {
    /// True if this first client packet is an SSL request rather than a HandshakeResponse41.
    pub fn is_ssl_request(payload: &[u8]) -> bool {
        payload.len() == SSL_REQUEST_LEN
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let (capabilities, max_packet, charset) = decode_prefix(&mut Reader::new(payload))?;
        Ok(Self {
            capabilities,
            max_packet,
            charset,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        encode_prefix(out, self.capabilities, self.max_packet, self.charset);
    }
}

/// The client's answer to the greeting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    pub capabilities: Capabilities,
    pub max_packet: u32,
    pub charset: u8,
    pub username: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<String>,
    pub connect_attrs: Vec<(String, String)>,
}

impl HandshakeResponse41 {
    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        let (caps, max_packet, charset) = decode_prefix(&mut r)?;
        let username = utf8(r.nul_bytes("username")?, "username")?;
        let auth_response = if caps.contains(CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            r.lenenc_bytes("auth response")?
        } else if caps.contains(CLIENT_SECURE_CONNECTION) {
            let len = r.u8("auth response")?;
            r.bytes(usize::from(len), "auth response")?
        } else {
            r.nul_bytes("auth response")?
        };
        // Clients disagree on terminating the trailing strings, and some set a flag but send
        // nothing: an absent or empty value is `None`.
        let mut optional = |flag: u64, what| -> Result<Option<String>, ProtocolError> {
            if !caps.contains(flag) || r.is_empty() {
                return Ok(None);
            }
            let s = utf8(r.nul_or_rest(), what)?;
            Ok(Some(s).filter(|s| !s.is_empty()))
        };
        let database = optional(CLIENT_CONNECT_WITH_DB, "database")?;
        let auth_plugin = optional(CLIENT_PLUGIN_AUTH, "auth plugin")?;
        let mut connect_attrs = Vec::new();
        if caps.contains(CLIENT_CONNECT_ATTRS) && !r.is_empty() {
            let mut attrs = Reader::new(r.lenenc_bytes("connect attributes")?);
            while !attrs.is_empty() {
                let key = attrs.lenenc_bytes("connect attribute key")?;
                let value = attrs.lenenc_bytes("connect attribute value")?;
                let text = |b| String::from_utf8_lossy(b).into_owned();
                connect_attrs.push((text(key), text(value)));
            }
        }
        Ok(Self {
            capabilities: caps,
            max_packet,
            charset,
            username,
            auth_response: auth_response.to_vec(),
            database,
            auth_plugin,
            connect_attrs,
        })
    }

    /// Encodes with the fields that `capabilities` announces; `CLIENT_CONNECT_WITH_DB` and
    /// `CLIENT_PLUGIN_AUTH` should match whether `database` / `auth_plugin` are set.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        let caps = self.capabilities;
        encode_prefix(out, caps, self.max_packet, self.charset);
        put_nul_bytes(out, self.username.as_bytes());
        if caps.contains(CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            put_lenenc_bytes(out, &self.auth_response);
        } else if caps.contains(CLIENT_SECURE_CONNECTION) {
            let len =
                u8::try_from(self.auth_response.len()).map_err(|_| ProtocolError::TooLarge {
                    what: "auth response",
                    len: self.auth_response.len(),
                    max: 255,
                })?;
            out.put_u8(len);
            out.put_slice(&self.auth_response);
        } else {
            put_nul_bytes(out, &self.auth_response);
        }
        if caps.contains(CLIENT_CONNECT_WITH_DB) {
            put_nul_bytes(out, self.database.as_deref().unwrap_or("").as_bytes());
        }
        if caps.contains(CLIENT_PLUGIN_AUTH) {
            put_nul_bytes(out, self.auth_plugin.as_deref().unwrap_or("").as_bytes());
        }
        if caps.contains(CLIENT_CONNECT_ATTRS) {
            let mut attrs = BytesMut::new();
            for (k, v) in &self.connect_attrs {
                put_lenenc_bytes(&mut attrs, k.as_bytes());
                put_lenenc_bytes(&mut attrs, v.as_bytes());
            }
            put_lenenc_int(out, attrs.len() as u64);
            out.put_slice(&attrs);
        }
        Ok(())
    }
}

/// The server asks the client to authenticate with another plugin (and a fresh nonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    pub plugin: String,
    /// Plugin data without the trailing NUL that servers append (for the built-in plugins,
    /// the 20-byte nonce).
    pub data: Vec<u8>,
}

impl AuthSwitchRequest {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(AUTH_SWITCH_HEADER);
        put_nul_bytes(out, self.plugin.as_bytes());
        put_nul_bytes(out, &self.data);
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(payload);
        if r.u8("auth switch header")? != AUTH_SWITCH_HEADER {
            return Err(ProtocolError::Malformed("auth switch header"));
        }
        if r.is_empty() {
            return Err(ProtocolError::Unsupported("old-password auth switch"));
        }
        let plugin = utf8(r.nul_bytes("auth switch plugin")?, "auth switch plugin")?;
        let data = r.rest();
        let data = data.strip_suffix(&[0]).unwrap_or(data);
        Ok(Self {
            plugin,
            data: data.to_vec(),
        })
    }
}

/// Extra authentication data from the server (caching_sha2 status bytes, an RSA public key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMoreData {
    pub data: Vec<u8>,
}

impl AuthMoreData {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(AUTH_MORE_DATA_HEADER);
        out.put_slice(&self.data);
    }

    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        match payload.split_first() {
            Some((&AUTH_MORE_DATA_HEADER, data)) => Ok(Self {
                data: data.to_vec(),
            }),
            _ => Err(ProtocolError::Malformed("auth more data header")),
        }
    }
}

/// What the server can answer during authentication (read by the proxy as upstream client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    Ok(OkPacket),
    Err(ErrPacket),
    Switch(AuthSwitchRequest),
    MoreData(AuthMoreData),
}

impl AuthReply {
    pub fn decode(payload: &[u8], caps: Capabilities) -> Result<Self, ProtocolError> {
        match payload.first() {
            Some(&OK_HEADER) => OkPacket::decode(payload, caps).map(Self::Ok),
            Some(&ERR_HEADER) => ErrPacket::decode(payload).map(Self::Err),
            Some(&AUTH_SWITCH_HEADER) => AuthSwitchRequest::decode(payload).map(Self::Switch),
            Some(&AUTH_MORE_DATA_HEADER) => AuthMoreData::decode(payload).map(Self::MoreData),
            Some(&header) => Err(ProtocolError::Unexpected {
                context: "during authentication",
                header,
            }),
            None => Err(ProtocolError::Malformed("authentication reply")),
        }
    }
}

#[cfg(test)]
mod tests;
