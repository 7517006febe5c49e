//! The MySQL/MariaDB engine: transaction pooling with exact session-state tracking.
//!
//! `frontend` authenticates clients with the proxy as the server; `session` runs each client's
//! commands on pooled upstream connections (`pool`, `upstream`), replaying replayable state
//! (`state`) and relaying responses in each client's own framing (`relay`). `protocol` is the
//! sans-IO wire format; `io` is the only place that frames bytes on sockets.

pub mod charset;
pub mod frontend;
pub mod io;
pub mod pool;
pub mod protocol;
pub mod relay;
pub mod session;
pub mod state;
pub mod stmt_cache;
pub mod upstream;
pub mod view;
