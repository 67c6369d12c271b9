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
    /// The TLS handshake failed or the peer refused this connection's
    /// certificate: retrying the same server will not help.
    #[error("TLS with {addr}: {reason}")]
    Refused { addr: String, reason: String },
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("decode message: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl RpcError {
    /// An I/O error with `addr`; a TLS refusal behind it becomes [`RpcError::Refused`].
    pub fn io(addr: &str, source: io::Error) -> RpcError {
        match crate::tls::explain(&source) {
            Some(reason) => RpcError::Refused { addr: addr.to_string(), reason },
            None => RpcError::Io { addr: addr.to_string(), source },
        }
    }

    /// A failed TLS handshake with `addr`: refused when TLS said no, else
    /// (the connection broke) an I/O error.
    pub fn handshake(addr: &str, source: io::Error) -> RpcError {
        match crate::tls::explain(&source) {
            Some(reason) => RpcError::Refused { addr: addr.to_string(), reason: format!("handshake: {reason}") },
            None => RpcError::Io {
                addr: addr.to_string(),
                source: io::Error::new(source.kind(), format!("TLS handshake: {source}")),
            },
        }
    }

    /// Whether the peer may simply be down or slow (so another replica, shard
    /// or a later retry can help).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RpcError::Connect { .. } | RpcError::Io { .. } | RpcError::Timeout { .. })
    }
}
