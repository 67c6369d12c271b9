//! The portable shard store: one file per shard, through ordinary buffered
//! reads and writes.
//!
//! The layout, locking, space accounting and the tmp → fsync → rename →
//! fsync dir protocol are shared with the io_uring backend
//! (`store_core.rs`). New shards are written in
//! [`shard_format`](crate::shard_format) version 1; version-2 shards (written
//! by [`UringStore`](crate::UringStore)) read back just as well.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use shardline_types::ShardKey;

use crate::disk::write_new_file;
use crate::shard_format::{Format, ShardHeader, HEADER_LEN_V1};
use crate::store::Backend;
use crate::store_core::StoreCore;
use crate::{DataError, ShardStore, Usage};

/// Shards as files under a directory.
pub struct FileStore {
    core: StoreCore,
}

impl FileStore {
    /// Open (creating if needed) the store under `dir`. Removes temporary
    /// files left by a crash and counts the shards present from directory
    /// metadata alone. `capacity_bytes`: a limit on the bytes stored; `None`
    /// means whatever the file system has free.
    pub fn open(dir: &Path, capacity_bytes: Option<u64>) -> Result<FileStore, DataError> {
        Ok(FileStore { core: StoreCore::open(dir, capacity_bytes)? })
    }

    /// Where the shard for `key` lives: (its directory, its path).
    pub fn shard_path(&self, key: &ShardKey) -> (PathBuf, PathBuf) {
        self.core.shard_path(key)
    }
}

impl ShardStore for FileStore {
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError> {
        let header = ShardHeader { key: *key, payload_len: data.len() as u64, payload_crc: crc32c }.encode();
        self.core.put_with(key, data, crc32c, Format::V1, |tmp| write_new_file(tmp, &[&header, data]))
    }

    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
        let (_, path) = self.core.shard_path(key);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DataError::NotFound),
            Err(e) => return Err(DataError::io("open shard file", e)),
        };
        let file_len = f.metadata().map_err(|e| DataError::io("stat shard file", e))?.len();
        let mut head = [0u8; HEADER_LEN_V1];
        let head_len = (HEADER_LEN_V1 as u64).min(file_len) as usize;
        f.read_exact(&mut head[..head_len]).map_err(|e| DataError::io("read shard header", e))?;
        let (header, format) = ShardHeader::decode(&head[..head_len])?;
        let range = header.check_file(key, format, file_len)?;
        f.seek(SeekFrom::Start(range.start as u64)).map_err(|e| DataError::io("seek to shard payload", e))?;
        let mut data = vec![0u8; range.len()];
        f.read_exact(&mut data).map_err(|e| DataError::io("read shard payload", e))?;
        let crc = header.verify_payload(&data)?;
        Ok((data, crc))
    }

    fn backend(&self) -> Backend {
        Backend { name: "file", direct_io: false }
    }

    crate::store_core::delegate_to_core!();
}

#[cfg(test)]
#[path = "file_store_tests.rs"]
mod tests;
