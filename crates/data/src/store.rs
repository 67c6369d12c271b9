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

    /// Up to `len` bytes of a shard from `offset` (fewer at its end; `len`
    /// 0 means to the end), verified as far as the backend's checksums
    /// allow, and the shard's whole length. An offset past the end is
    /// [`DataError::InvalidArgument`]. The default reads the whole shard;
    /// backends with per-block checksums read only the blocks the range
    /// touches.
    fn get_range(&self, key: &ShardKey, offset: u64, len: u64) -> Result<(Vec<u8>, u64), DataError> {
        let (mut data, _) = self.get(key)?;
        let shard_len = data.len() as u64;
        let (start, end) = range_within(offset, len, shard_len)?;
        data.truncate(end);
        data.drain(..start);
        Ok((data, shard_len))
    }

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

/// `[start, end)` of a shard of `shard_len` bytes for a request of `len`
/// bytes (0: to the end) from `offset`.
pub fn range_within(offset: u64, len: u64, shard_len: u64) -> Result<(usize, usize), DataError> {
    if offset > shard_len {
        return Err(DataError::InvalidArgument(format!(
            "range starts at {offset}, past the shard's {shard_len} bytes"
        )));
    }
    let end = if len == 0 { shard_len } else { offset.saturating_add(len).min(shard_len) };
    Ok((offset as usize, end as usize))
}
