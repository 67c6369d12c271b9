//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong loading keys, wrapping DEKs or opening chunks.
///
/// Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file does not exist.
    #[error("key file {path} does not exist")]
    KeyFileMissing { path: PathBuf },

    /// Reading, creating or syncing the key file failed.
    #[error("{action} key file {path}: {source}")]
    KeyFileIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The key file is accessible to group or others; it must be mode 0600 (or stricter).
    #[error("key file {path} has mode {mode:04o}; refusing a key readable or writable by group/others (chmod 600 it)")]
    KeyFileInsecure { path: PathBuf, mode: u32 },

    /// The key file belongs to another user.
    #[error("key file {path} belongs to uid {owner}, not to this user (uid {me}) or root")]
    KeyFileOwner { path: PathBuf, owner: u32, me: u32 },

    /// The key file's directory lets any user replace the file.
    #[error("key file directory {dir} has mode {mode:04o}: any user may replace the key (chmod o-w it)")]
    KeyDirInsecure { dir: PathBuf, mode: u32 },

    /// The key file is not a well-formed `shardline-kek v1` or `v2` file.
    #[error("key file {path} is malformed at line {line}: {reason}")]
    KeyFileMalformed { path: PathBuf, line: usize, reason: String },

    /// A sealed chunk is shorter than nonce + tag.
    #[error("sealed chunk is truncated: {len} bytes, need at least {min}")]
    Truncated { len: usize, min: usize },

    /// A sealed chunk failed authentication: wrong key, wrong file/chunk/version,
    /// or corrupted bytes.
    #[error("sealed chunk failed authentication (wrong key, wrong location or corrupted data)")]
    ChunkAuthFailed,

    /// A v2 segment failed authentication: wrong key, wrong file/chunk/
    /// version/position, truncated or corrupted.
    #[error("sealed segment {segment} failed authentication (wrong key, wrong location, reordered, truncated or corrupted data)")]
    SegmentAuthFailed { segment: usize },

    /// Segments asked for that the chunk does not have.
    #[error("segments {segments:?} asked of a chunk of {count} segments")]
    SegmentOutOfRange { segments: std::ops::Range<usize>, count: usize },

    /// Plaintext bytes asked for that the chunk does not hold.
    #[error("plaintext bytes {range:?} asked of a chunk of {len} bytes")]
    PlainOutOfRange { range: std::ops::Range<usize>, len: usize },

    /// A v2 sealed length that no plaintext seals to.
    #[error("sealed length {sealed_len} is not a valid chunk format v2 length")]
    BadSealedLength { sealed_len: usize },

    /// A cipher suite this build does not know.
    #[error("unknown cipher suite {0}")]
    UnknownSuite(i32),

    /// A chunk format this build does not know.
    #[error("unknown chunk format {0}")]
    UnknownFormat(u32),

    /// A wrapped DEK has the wrong length.
    #[error("wrapped DEK has {len} bytes, expected {expected}")]
    WrappedDekLength { len: usize, expected: usize },

    /// No key source is configured: a client never runs without a key.
    #[error("no key: give a key file (--key-file, or the cluster file's key_file) or a key command")]
    NoKey,

    /// The external key command failed or printed nothing usable.
    #[error("{command}: {reason}")]
    KeyCommand { command: String, reason: String },

    /// A wrapped DEK names a KEK id the keyring is not.
    #[error("the file's key is wrapped by key {kek_id:?}; this key file holds {held:?}")]
    UnknownKek { kek_id: String, held: String },

    /// A wrapped DEK names a version of the KEK the keyring does not hold
    /// (never added here, or retired).
    #[error("the file's key is wrapped by version {version} of key {kek_id}, which this key file does not hold (it holds {held:?})")]
    UnknownKekVersion { kek_id: String, version: u32, held: Vec<u32> },

    /// A keyring holds as many versions as it may.
    #[error("key {kek_id} already has {max} versions: retire old ones first")]
    KeyringFull { kek_id: String, max: usize },

    /// The current version of a keyring cannot be retired.
    #[error("version {version} of key {kek_id} is current and cannot be retired")]
    RetireCurrent { kek_id: String, version: u32 },

    /// A wrapped DEK failed to authenticate under this KEK.
    #[error("wrapped DEK failed authentication under KEK {kek_id} version {kek_version}")]
    UnwrapFailed { kek_id: String, kek_version: u32 },

    /// A DEK wrap format this build does not know.
    #[error("unknown key wrap format {format}")]
    UnknownWrapFormat { format: u32 },
}
