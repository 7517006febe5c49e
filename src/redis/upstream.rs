//! One upstream Redis connection: connect, authenticate with the pool's credentials, choose the
//! protocol, and learn what the proxy needs to answer for the upstream (version, number of
//! databases). Used by both the shared lanes and the dedicated connections.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::resp::{self, Limits, Scanner, Value};
use crate::config::Secret;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub pool: String,
    pub addr: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub connect_timeout: Duration,
}

/// What the upstream told us about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub version: String,
    pub databases: u32,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Connect(#[from] crate::pool::ConnectError),
    #[error("upstream {addr} refused the proxy's {step}: {message}")]
    Rejected {
        addr: String,
        step: &'static str,
        message: String,
    },
    #[error("upstream {addr}: {cause}")]
    Io { addr: String, cause: String },
    #[error("upstream {addr} sent malformed RESP: {cause}")]
    Protocol { addr: String, cause: String },
}

/// An authenticated upstream connection with its current db and protocol.
#[derive(Debug)]
pub struct RedisConn {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub scanner: Scanner,
    pub db: u16,
    pub resp3: bool,
    pub created: Instant,
    /// Set when the connection's state is unknown; it is then closed, never reused.
    pub broken: bool,
    pub addr: String,
}

/// Connects and runs the setup exchange, pipelined in one write: `HELLO <proto> [AUTH u p]
/// SETNAME <name>` and `CONFIG GET databases`.
pub async fn connect(
    spec: &UpstreamSpec,
    resp3: bool,
    conn_name: &str,
) -> Result<(RedisConn, ServerFacts), UpstreamError> {
    let addr = spec.addr.clone();
    let stream = crate::pool::connect_tcp(&addr, spec.connect_timeout).await?;
    let mut conn = RedisConn {
        stream,
        buf: BytesMut::with_capacity(4096),
        scanner: Scanner::new(Limits::default()),
        db: 0,
        resp3,
        created: Instant::now(),
        broken: false,
        addr,
    };
    let setup = tokio::time::timeout(spec.connect_timeout, handshake(&mut conn, spec, conn_name));
    match setup.await {
        Ok(Ok(facts)) => Ok((conn, facts)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(UpstreamError::Connect(crate::pool::ConnectError::Timeout {
            addr: conn.addr,
            timeout: spec.connect_timeout,
        })),
    }
}

async fn handshake(
    conn: &mut RedisConn,
    spec: &UpstreamSpec,
    conn_name: &str,
) -> Result<ServerFacts, UpstreamError> {
    let proto: &[u8] = if conn.resp3 { b"3" } else { b"2" };
    let mut hello: Vec<&[u8]> = vec![b"HELLO", proto];
    let user = spec.username.as_deref().unwrap_or("default");
    if let Some(pw) = &spec.password {
        hello.extend([b"AUTH".as_slice(), user.as_bytes(), pw.expose().as_bytes()]);
    }
    hello.extend([b"SETNAME".as_slice(), conn_name.as_bytes()]);
    let mut out = BytesMut::new();
    resp::encode_command(&mut out, &hello);
    resp::encode_command(&mut out, &[b"CONFIG", b"GET", b"databases"]);
    conn.write_all(&out).await?;

    let hello_reply = conn.read_value().await?;
    let version = match &hello_reply {
        Value::Error(e) => {
            return Err(UpstreamError::Rejected {
                addr: conn.addr.clone(),
                step: "HELLO (Redis >= 6 is required; AUTH goes with it)",
                message: String::from_utf8_lossy(e).into_owned(),
            });
        }
        v => map_get(v, b"version")
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| "unknown".into()),
    };
    // CONFIG may be disabled or renamed; Redis's default is then the best answer.
    let databases = match conn.read_value().await? {
        v @ (Value::Array(_) | Value::Map(_)) => map_get(&v, b"databases")
            .and_then(|d| {
                d.as_bytes()
                    .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
            })
            .unwrap_or(16),
        _ => 16,
    };
    Ok(ServerFacts { version, databases })
}

/// Looks a key up in a RESP3 map or a RESP2 flat key/value array.
pub fn map_get<'a>(v: &'a Value, key: &[u8]) -> Option<&'a Value> {
    match v {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_bytes() == Some(key))
            .map(|(_, v)| v),
        Value::Array(items) => items
            .chunks(2)
            .find(|kv| kv.len() == 2 && kv[0].as_bytes() == Some(key))
            .map(|kv| &kv[1]),
        _ => None,
    }
}

impl RedisConn {
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        let r = self.stream.write_all(bytes).await;
        r.map_err(|e| self.io_error(e))
    }

    /// Reads one complete frame (raw bytes). Not for the data path of shared lanes, which scan
    /// many frames per read.
    pub async fn read_frame(&mut self) -> Result<Bytes, UpstreamError> {
        loop {
            match self.scanner.scan(&self.buf) {
                Ok(Some(info)) => return Ok(self.buf.split_to(info.len).freeze()),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(UpstreamError::Protocol {
                        addr: self.addr.clone(),
                        cause: e.to_string(),
                    });
                }
            }
            self.buf.reserve(4096);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => {
                    self.broken = true;
                    return Err(UpstreamError::Io {
                        addr: self.addr.clone(),
                        cause: "connection closed by the upstream".into(),
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
    }

    pub async fn read_value(&mut self) -> Result<Value, UpstreamError> {
        let frame = self.read_frame().await?;
        resp::decode_value(&frame, Limits::default()).map_err(|e| UpstreamError::Protocol {
            addr: self.addr.clone(),
            cause: e.to_string(),
        })
    }

    /// Switches db and protocol to what a client expects, in one round trip.
    pub async fn align(&mut self, db: u16, resp3: bool) -> Result<(), UpstreamError> {
        let mut out = BytesMut::new();
        let mut replies = 0;
        if resp3 != self.resp3 {
            resp::encode_command(&mut out, &[b"HELLO", if resp3 { b"3" } else { b"2" }]);
            replies += 1;
        }
        if db != self.db {
            resp::encode_command(&mut out, &[b"SELECT", db.to_string().as_bytes()]);
            replies += 1;
        }
        if replies == 0 {
            return Ok(());
        }
        self.write_all(&out).await?;
        for _ in 0..replies {
            if let Value::Error(e) = self.read_value().await? {
                self.broken = true;
                return Err(UpstreamError::Rejected {
                    addr: self.addr.clone(),
                    step: "HELLO/SELECT",
                    message: String::from_utf8_lossy(&e).into_owned(),
                });
            }
        }
        self.db = db;
        self.resp3 = resp3;
        Ok(())
    }

    fn io_error(&mut self, e: std::io::Error) -> UpstreamError {
        self.broken = true;
        UpstreamError::Io {
            addr: self.addr.clone(),
            cause: e.to_string(),
        }
    }
}
