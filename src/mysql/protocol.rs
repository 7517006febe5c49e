//! The MySQL/MariaDB client/server wire protocol, sans-IO: framing, handshake, authentication,
//! client commands, responses and where a response ends. Nothing here touches a socket; encoders
//! append to a `BytesMut`, decoders read a byte slice and never panic on any input.

pub mod auth;
pub mod capabilities;
pub mod command;
pub mod handshake;
pub mod packet;
pub mod response;
pub mod sqlscan;
pub mod tracker;

pub use capabilities::Capabilities;

/// Why bytes from a peer could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A field was truncated or held an impossible value; names the field.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A declared length is above the limit; checked before anything is allocated.
    #[error("{what} too large: {len} bytes (max {max})")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// A well-formed packet that has no place at this point of the exchange.
    #[error("unexpected packet 0x{header:02x} {context}")]
    Unexpected { context: &'static str, header: u8 },
    /// Something valid that this implementation deliberately does not speak.
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Bytes from a hex dump ("0a 35 2e …"); whitespace is ignored.
    pub fn hex(dump: &str) -> Vec<u8> {
        let digits: Vec<u8> = dump.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }
}

#[cfg(test)]
mod robustness;
