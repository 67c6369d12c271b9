//! The crate's one error type, and how it maps to wire codes.

use std::io;

use shardline_types::ErrorCode;

/// Everything that can go wrong storing or serving a shard.
///
/// Messages carry ids and sizes only: never a path, a file name or data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No shard is stored under the key.
    #[error("shard not found")]
    NotFound,
    /// The shard on disk failed a check (header, length or CRC32C).
    #[error("shard is corrupt: {0}")]
    Corrupt(String),
    /// A payload offered for storage does not match its CRC32C.
    #[error("payload checksum mismatch: expected {expected:08x}, computed {actual:08x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
    /// Storing the shard would exceed the capacity.
    #[error("no space: shard needs {needed} bytes, {available} available")]
    NoSpace { needed: u64, available: u64 },
    /// A request that can never succeed as sent.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The server's configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local I/O operation failed; `context` says which (a verb phrase).
    #[error("{context}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// The request was made with an older placement map than this server
    /// has seen; the sender should refresh its map.
    #[error("stale placement epoch {request} (this server has seen {current})")]
    StaleEpoch { request: u64, current: u64 },
    /// The request's capability token is missing or does not allow it.
    #[error("refused: {0}")]
    Refused(String),
    /// A peer or the metadata service could not help (rebuild, scrub).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or a lost blocking task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DataError {
    /// Wrap an I/O error with what we were doing.
    pub fn io(context: &'static str, source: io::Error) -> Self {
        DataError::Io { context, source }
    }

    /// The stable code that crosses the wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            DataError::NotFound => ErrorCode::NotFound,
            DataError::Corrupt(_) | DataError::ChecksumMismatch { .. } => ErrorCode::Corrupt,
            DataError::NoSpace { .. } => ErrorCode::NoSpace,
            DataError::InvalidArgument(_) | DataError::Config(_) => ErrorCode::InvalidArgument,
            DataError::Io { .. } | DataError::Internal(_) => ErrorCode::Internal,
            DataError::StaleEpoch { .. } => ErrorCode::StaleEpoch,
            DataError::Unavailable(_) => ErrorCode::Unavailable,
            DataError::Refused(_) => ErrorCode::PermissionDenied,
        }
    }

    /// Whether the same request may succeed if sent again. A payload damaged
    /// in transit can be resent; everything else follows its code.
    pub fn retryable(&self) -> bool {
        match self {
            DataError::ChecksumMismatch { .. } => true,
            other => other.code().retryable(),
        }
    }

    /// The message with its whole source chain, for the wire and logs.
    pub fn chain(&self) -> String {
        let mut msg = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            msg.push_str(": ");
            msg.push_str(&e.to_string());
            src = e.source();
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_chain_includes_the_cause() {
        let e = DataError::io("read shard header", io::Error::from_raw_os_error(libc::EIO));
        assert!(e.chain().starts_with("read shard header: "), "{}", e.chain());
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(DataError::ChecksumMismatch { expected: 1, actual: 2 }.retryable());
        assert!(!DataError::NotFound.retryable());
    }
}
