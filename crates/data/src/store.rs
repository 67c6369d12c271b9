//! The storage seam: what any shard backend must do.
//!
//! Methods are synchronous and may block on disk; async callers run them in
//! `tokio::task::spawn_blocking`. Every implementation must pass the
//! conformance suite (`src/conformance.rs`).

use shardline_types::ShardKey;

use crate::DataError;

/// Space accounting for one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes the stored shards occupy, format overhead included.
    pub used_bytes: u64,
    /// Bytes the store may occupy in total (a configured limit, or what the
    /// file system has free plus what the store already uses).
    pub capacity_bytes: u64,
    /// Number of stored shards.
    pub shard_count: u64,
}

/// What a store is, for reports (`admin status`, `demo`, `bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// "io_uring" or "file".
    pub name: &'static str,
    /// Shard files are read and written with `O_DIRECT` (else buffered).
    pub direct_io: bool,
}

/// A durable map from [`ShardKey`] to shard bytes with their CRC32C.
pub trait ShardStore: Send + Sync + 'static {
    /// Store `data` under `key`, replacing any previous shard, durably before
    /// returning. Refuses (storing nothing) a payload whose CRC32C is not
    /// `crc32c` ([`DataError::ChecksumMismatch`]) or that would exceed the
    /// capacity ([`DataError::NoSpace`]). A crash leaves the old shard or the
    /// new one, never a mix.
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError>;

    /// Read a shard and its CRC32C, verified: [`DataError::NotFound`] if
    /// absent, [`DataError::Corrupt`] if it fails a check.
    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError>;

    /// Remove a shard durably; `Ok(false)` if there was none.
    fn delete(&self, key: &ShardKey) -> Result<bool, DataError>;

    /// Every stored shard's key, sorted.
    fn list(&self) -> Result<Vec<ShardKey>, DataError>;

    /// Current space accounting (cheap: no data reads).
    fn usage(&self) -> Usage;

    /// Which backend this is and how it does I/O now.
    fn backend(&self) -> Backend;

    /// When the shard was last written, if the backend knows (garbage
    /// collection leaves young shards alone: their write may be in flight).
    fn modified(&self, _key: &ShardKey) -> Option<std::time::SystemTime> {
        None
    }
}
