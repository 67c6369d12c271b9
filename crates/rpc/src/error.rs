//! Transport errors.

use std::io;

/// What can go wrong moving a frame.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("i/o with {addr}: {source}")]
    Io { addr: String, source: io::Error },
    #[error("request to {addr} timed out after {millis} ms")]
    Timeout { addr: String, millis: u64 },
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("decode message: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl RpcError {
    /// Whether the peer may simply be down or slow (so another replica, shard
    /// or a later retry can help).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RpcError::Connect { .. } | RpcError::Io { .. } | RpcError::Timeout { .. })
    }
}
