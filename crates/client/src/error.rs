//! The client's error type. Messages carry ids, never file names or data.

use shardline_rpc::MetaCallError;
use shardline_types::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Meta(#[from] MetaCallError),
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    #[error("not a regular file")]
    NotAFile,
    #[error("not a directory")]
    NotADirectory,
    #[error("file {file_id} chunk {chunk_index}: only {have} of the {need} shards needed could be read ({detail})")]
    Unavailable { file_id: u64, chunk_index: u64, have: usize, need: usize, detail: String },
    #[error("file {file_id} chunk {chunk_index}: write failed on shard {shard_index}: {detail}")]
    WriteFailed { file_id: u64, chunk_index: u64, shard_index: usize, detail: String },
    #[error("no placement map yet: {0}")]
    NoPlacement(String),
    #[error("file {file_id}: {detail}")]
    Corrupt { file_id: u64, detail: String },
    /// The chunk list or size the metadata service returned does not
    /// match the file's authenticated manifest (or the manifest is gone).
    #[error("file {file_id}: integrity check failed: {detail}")]
    Integrity { file_id: u64, detail: String },
    #[error("encryption: {0}")]
    Crypto(#[from] shardline_crypto::CryptoError),
    #[error("erasure coding: {0}")]
    Erasure(#[from] shardline_erasure::ErasureError),
    #[error("a read of this file ({size} bytes) does not fit in memory; read it in ranges")]
    TooLarge { size: u64 },
    #[error("file {file_id}: stale file handle: {detail}")]
    Stale { file_id: u64, detail: String },
    #[error("internal: {0}")]
    Internal(String),
}

impl ClientError {
    /// The stable code behind this error (for errno mapping and scripts).
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Meta(e) => e.code(),
            ClientError::InvalidPath(_) => ErrorCode::InvalidArgument,
            ClientError::NotAFile => ErrorCode::IsADirectory,
            ClientError::NotADirectory => ErrorCode::NotADirectory,
            ClientError::Unavailable { .. } | ClientError::NoPlacement(_) => ErrorCode::Unavailable,
            ClientError::WriteFailed { detail, .. } if detail.contains("no space") => ErrorCode::NoSpace,
            ClientError::WriteFailed { .. } => ErrorCode::Unavailable,
            ClientError::Corrupt { .. } | ClientError::Integrity { .. } | ClientError::Crypto(_) => ErrorCode::Corrupt,
            ClientError::Erasure(_) | ClientError::Internal(_) => ErrorCode::Internal,
            ClientError::TooLarge { .. } => ErrorCode::InvalidArgument,
            ClientError::Stale { .. } => ErrorCode::Stale,
        }
    }
}
