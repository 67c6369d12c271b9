//! Error codes that cross the wire, with their retry semantics.

use serde::{Deserialize, Serialize};

/// A stable error code (mirrors `shardline.v1.ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    NotEmpty,
    NotLeader,
    StaleEpoch,
    Unavailable,
    InvalidArgument,
    Corrupt,
    NoSpace,
    Internal,
    PermissionDenied,
    NameTooLong,
    /// A client's snapshot of a file is gone: the file was removed or
    /// replaced, or the chunk rewritten, since it was opened (client side
    /// only; never sent on the wire).
    Stale,
}

impl ErrorCode {
    /// Whether retrying the same request later can succeed.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorCode::NotLeader | ErrorCode::StaleEpoch | ErrorCode::Unavailable)
    }

    /// The closest POSIX errno, for the FUSE mount and the CLI.
    pub fn errno(self) -> i32 {
        match self {
            ErrorCode::NotFound => 2,          // ENOENT
            ErrorCode::AlreadyExists => 17,    // EEXIST
            ErrorCode::NotADirectory => 20,    // ENOTDIR
            ErrorCode::IsADirectory => 21,     // EISDIR
            ErrorCode::NotEmpty => 39,         // ENOTEMPTY
            ErrorCode::InvalidArgument => 22,  // EINVAL
            ErrorCode::NoSpace => 28,          // ENOSPC
            ErrorCode::PermissionDenied => 13, // EACCES
            ErrorCode::NameTooLong => 36,      // ENAMETOOLONG
            ErrorCode::Stale => 116,           // ESTALE
            _ => 5,                            // EIO
        }
    }
}
