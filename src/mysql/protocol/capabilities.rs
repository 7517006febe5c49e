//! Capability flags (negotiated in the handshake) and server status flags (reported in OK/EOF).
//!
//! Capabilities are a `u64`: the low 32 bits are the standard MySQL flags, the high 32 bits are
//! MariaDB's extended capabilities, which travel in otherwise-reserved handshake bytes and are
//! only exchanged when the `CLIENT_LONG_PASSWORD` bit (MariaDB's `CLIENT_MYSQL`) is clear.

use std::ops::{BitAnd, BitOr};

pub const CLIENT_LONG_PASSWORD: u64 = 1;
/// MariaDB's name for bit 0: set by MySQL peers, clear when MariaDB extended caps are in use.
pub const CLIENT_MYSQL: u64 = CLIENT_LONG_PASSWORD;
pub const CLIENT_FOUND_ROWS: u64 = 1 << 1;
pub const CLIENT_LONG_FLAG: u64 = 1 << 2;
pub const CLIENT_CONNECT_WITH_DB: u64 = 1 << 3;
pub const CLIENT_NO_SCHEMA: u64 = 1 << 4;
pub const CLIENT_COMPRESS: u64 = 1 << 5;
pub const CLIENT_ODBC: u64 = 1 << 6;
pub const CLIENT_LOCAL_FILES: u64 = 1 << 7;
pub const CLIENT_IGNORE_SPACE: u64 = 1 << 8;
pub const CLIENT_PROTOCOL_41: u64 = 1 << 9;
pub const CLIENT_INTERACTIVE: u64 = 1 << 10;
pub const CLIENT_SSL: u64 = 1 << 11;
pub const CLIENT_IGNORE_SIGPIPE: u64 = 1 << 12;
pub const CLIENT_TRANSACTIONS: u64 = 1 << 13;
pub const CLIENT_RESERVED: u64 = 1 << 14;
/// Also called `CLIENT_RESERVED2`: 4.1 authentication (length-prefixed auth response).
pub const CLIENT_SECURE_CONNECTION: u64 = 1 << 15;
pub const CLIENT_MULTI_STATEMENTS: u64 = 1 << 16;
pub const CLIENT_MULTI_RESULTS: u64 = 1 << 17;
pub const CLIENT_PS_MULTI_RESULTS: u64 = 1 << 18;
pub const CLIENT_PLUGIN_AUTH: u64 = 1 << 19;
pub const CLIENT_CONNECT_ATTRS: u64 = 1 << 20;
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u64 = 1 << 21;
pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u64 = 1 << 22;
pub const CLIENT_SESSION_TRACK: u64 = 1 << 23;
pub const CLIENT_DEPRECATE_EOF: u64 = 1 << 24;
/// MySQL 8: result sets may omit column definitions. The tracker does not speak it: never
/// negotiate it upstream.
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u64 = 1 << 25;
pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u64 = 1 << 26;
pub const CLIENT_QUERY_ATTRIBUTES: u64 = 1 << 27;
pub const CLIENT_MULTI_FACTOR_AUTHENTICATION: u64 = 1 << 28;
pub const CLIENT_CAPABILITY_EXTENSION: u64 = 1 << 29;
pub const CLIENT_SSL_VERIFY_SERVER_CERT: u64 = 1 << 30;
pub const CLIENT_REMEMBER_OPTIONS: u64 = 1 << 31;

/// MariaDB: progress reports, sent as ERR packets with code 0xFFFF in the middle of a response.
pub const MARIADB_CLIENT_PROGRESS: u64 = 1 << 32;
pub const MARIADB_CLIENT_COM_MULTI: u64 = 1 << 33;
pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u64 = 1 << 34;
/// MariaDB: extra type info in column definitions (framing unchanged).
pub const MARIADB_CLIENT_EXTENDED_METADATA: u64 = 1 << 35;
/// MariaDB: COM_STMT_EXECUTE may skip column definitions. The tracker does not speak it:
/// never negotiate it upstream.
pub const MARIADB_CLIENT_CACHE_METADATA: u64 = 1 << 36;
pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u64 = 1 << 37;

/// Capabilities whose framing the protocol layer does not implement; mask them out of
/// everything the proxy advertises or requests.
pub const UNSUPPORTED: u64 = CLIENT_COMPRESS
    | CLIENT_ZSTD_COMPRESSION_ALGORITHM
    | CLIENT_OPTIONAL_RESULTSET_METADATA
    | CLIENT_MULTI_FACTOR_AUTHENTICATION
    | MARIADB_CLIENT_CACHE_METADATA
    | MARIADB_CLIENT_COM_MULTI;

pub const SERVER_STATUS_IN_TRANS: u16 = 1;
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 1 << 1;
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
pub const SERVER_QUERY_NO_GOOD_INDEX_USED: u16 = 1 << 4;
pub const SERVER_QUERY_NO_INDEX_USED: u16 = 1 << 5;
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;
pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 1 << 7;
pub const SERVER_STATUS_DB_DROPPED: u16 = 1 << 8;
pub const SERVER_STATUS_NO_BACKSLASH_ESCAPES: u16 = 1 << 9;
pub const SERVER_STATUS_METADATA_CHANGED: u16 = 1 << 10;
pub const SERVER_QUERY_WAS_SLOW: u16 = 1 << 11;
pub const SERVER_PS_OUT_PARAMS: u16 = 1 << 12;
pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 1 << 13;
pub const SERVER_SESSION_STATE_CHANGED: u16 = 1 << 14;

/// A capability set; see the module doc for the 64-bit layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// From the standard 32 bits and MariaDB's extended 32 bits.
    pub fn from_parts(lower: u32, mariadb_ext: u32) -> Self {
        Self(u64::from(lower) | u64::from(mariadb_ext) << 32)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    /// The standard MySQL flags.
    pub fn lower(self) -> u32 {
        self.0 as u32
    }

    /// MariaDB's extended flags.
    pub fn mariadb_ext(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// True if every flag in `flags` is set.
    pub fn contains(self, flags: u64) -> bool {
        self.0 & flags == flags
    }

    pub fn with(self, flags: u64) -> Self {
        Self(self.0 | flags)
    }

    pub fn without(self, flags: u64) -> Self {
        Self(self.0 & !flags)
    }

    /// True when MariaDB extended capabilities travel in the handshake (bit 0 clear).
    pub fn uses_mariadb_ext(self) -> bool {
        !self.contains(CLIENT_MYSQL)
    }
}

impl BitAnd for Capabilities {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let caps = Capabilities::from_parts(0x81bff7fe, 0x1d);
        assert_eq!(caps.lower(), 0x81bff7fe);
        assert_eq!(caps.mariadb_ext(), 0x1d);
        assert!(caps.contains(MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_STMT_BULK_OPERATIONS));
        assert!(caps.contains(CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF));
        assert!(!caps.contains(CLIENT_MYSQL));
        assert!(caps.uses_mariadb_ext());
    }

    #[test]
    fn set_operations() {
        let a = Capabilities(CLIENT_SSL | CLIENT_PROTOCOL_41);
        assert!(a.contains(CLIENT_SSL));
        assert!(!a.contains(CLIENT_SSL | CLIENT_COMPRESS));
        assert_eq!(a.without(CLIENT_SSL), Capabilities(CLIENT_PROTOCOL_41));
        assert_eq!(
            a.with(CLIENT_COMPRESS).bits(),
            CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_COMPRESS
        );
        assert_eq!(a & Capabilities(CLIENT_SSL), Capabilities(CLIENT_SSL));
        assert_eq!(a | Capabilities(CLIENT_ODBC), a.with(CLIENT_ODBC));
    }
}
