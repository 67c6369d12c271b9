//! The portable shard store: one file per shard.
//!
//! Layout: `DIR/shards/<xx>/<ShardKey::file_name()>`, where `xx` is the low
//! byte, in hex, of the CRC32C of the file name (a frozen function, so the
//! layout never moves). Each file is a [`shard_format`](crate::shard_format)
//! header followed by the payload, written tmp → fsync → rename → fsync dir.
//!
//! Operations on one key are serialised by a striped lock so that the space
//! accounting stays exact under concurrent overwrites and deletes; reads take
//! no lock (a rename is atomic). Space is reserved before a write starts, so
//! concurrent puts cannot together overrun the capacity.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use shardline_types::ShardKey;

use crate::disk::{available_bytes, replace_durably, sync_dir};
use crate::shard_format::{ShardHeader, HEADER_LEN_V1};
use crate::{DataError, ShardStore, Usage};

const STRIPES: usize = 64;
const TMP_SUFFIX: &str = ".tmp";

#[derive(Debug, Default)]
struct Accounting {
    used_bytes: u64,
    shard_count: u64,
    /// Bytes of writes in flight.
    reserved: u64,
}

/// Shards as files under a directory.
pub struct FileStore {
    shards: PathBuf,
    capacity_limit: Option<u64>,
    acct: Mutex<Accounting>,
    stripes: [Mutex<()>; STRIPES],
    tmp_seq: AtomicU64,
}

impl FileStore {
    /// Open (creating if needed) the store under `dir`. Removes temporary
    /// files left by a crash and counts the shards present from directory
    /// metadata alone. `capacity_bytes`: a limit on the bytes stored; `None`
    /// means whatever the file system has free.
    pub fn open(dir: &Path, capacity_bytes: Option<u64>) -> Result<FileStore, DataError> {
        let shards = dir.join("shards");
        fs::create_dir_all(&shards).map_err(|e| DataError::io("create shard directory", e))?;
        for b in 0..=255u8 {
            match fs::create_dir(shards.join(format!("{b:02x}"))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(DataError::io("create shard subdirectory", e)),
            }
        }
        sync_dir(&shards)?;
        let store = FileStore {
            shards,
            capacity_limit: capacity_bytes,
            acct: Mutex::new(Accounting::default()),
            stripes: std::array::from_fn(|_| Mutex::new(())),
            tmp_seq: AtomicU64::new(0),
        };
        let mut acct = Accounting::default();
        let mut stale = 0u64;
        store.scan(|dir, name, key| match key {
            Some(_) => {
                let len = fs::metadata(dir.join(name)).map_err(|e| DataError::io("stat shard file", e))?.len();
                acct.used_bytes += len;
                acct.shard_count += 1;
                Ok(())
            }
            None if name.ends_with(TMP_SUFFIX) => {
                fs::remove_file(dir.join(name)).map_err(|e| DataError::io("remove stale temporary file", e))?;
                stale += 1;
                Ok(())
            }
            None => Ok(()),
        })?;
        if stale > 0 {
            tracing::info!(count = stale, "removed temporary files left by an interrupted write");
        }
        tracing::debug!(shards = acct.shard_count, used_bytes = acct.used_bytes, "opened file store");
        *store.acct.lock().unwrap_or_else(|e| e.into_inner()) = acct;
        Ok(store)
    }

    /// Where the shard for `key` lives: (its directory, its path).
    pub fn shard_path(&self, key: &ShardKey) -> (PathBuf, PathBuf) {
        let name = key.file_name();
        let dir = self.shards.join(format!("{:02x}", crc32c::crc32c(name.as_bytes()) & 0xff));
        let path = dir.join(name);
        (dir, path)
    }

    /// Visit every entry of every shard subdirectory with the parsed key, if
    /// the entry is a shard in its right place.
    fn scan(
        &self,
        mut visit: impl FnMut(&Path, &str, Option<ShardKey>) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        for b in 0..=255u8 {
            let dir = self.shards.join(format!("{b:02x}"));
            let entries = match fs::read_dir(&dir) {
                Ok(it) => it,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(DataError::io("list shard directory", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| DataError::io("list shard directory", e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let key = ShardKey::parse_file_name(&name).filter(|k| self.shard_path(k).0 == dir);
                visit(&dir, &name, key)?;
            }
        }
        Ok(())
    }

    fn stripe(&self, key: &ShardKey) -> MutexGuard<'_, ()> {
        let h = shardline_types::placement::mix64(
            key.file_id ^ key.chunk_index.rotate_left(17) ^ key.version.rotate_left(34),
        ) ^ u64::from(key.shard_index);
        self.stripes[(h % STRIPES as u64) as usize].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn acct(&self) -> MutexGuard<'_, Accounting> {
        self.acct.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserve room for a `new_len`-byte file replacing one of `old_len`.
    fn reserve(&self, new_len: u64, old_len: u64) -> Result<(), DataError> {
        let fs_free = match self.capacity_limit {
            Some(_) => 0,
            None => available_bytes(&self.shards)?,
        };
        let mut acct = self.acct();
        let available = match self.capacity_limit {
            Some(cap) => cap.saturating_add(old_len).saturating_sub(acct.used_bytes + acct.reserved),
            // Free space does not yet reflect writes in flight.
            None => fs_free.saturating_sub(acct.reserved),
        };
        if new_len > available {
            return Err(DataError::NoSpace { needed: new_len, available });
        }
        acct.reserved += new_len;
        Ok(())
    }
}

impl ShardStore for FileStore {
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError> {
        let actual = crc32c::crc32c(data);
        if actual != crc32c {
            return Err(DataError::ChecksumMismatch { expected: crc32c, actual });
        }
        let header = ShardHeader { key: *key, payload_len: data.len() as u64, payload_crc: crc32c }.encode();
        let new_len = header.len() as u64 + data.len() as u64;
        let _key_lock = self.stripe(key);
        let (dir, path) = self.shard_path(key);
        let old_len = match fs::metadata(&path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(DataError::io("stat shard file", e)),
        };
        self.reserve(new_len, old_len.unwrap_or(0))?;
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{}.{seq}{TMP_SUFFIX}", key.file_name()));
        let result = replace_durably(&dir, &tmp, &path, &[&header, data]);
        let mut acct = self.acct();
        acct.reserved -= new_len;
        if result.is_ok() {
            acct.used_bytes = (acct.used_bytes + new_len).saturating_sub(old_len.unwrap_or(0));
            acct.shard_count += u64::from(old_len.is_none());
        }
        result
    }

    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
        let (_, path) = self.shard_path(key);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DataError::NotFound),
            Err(e) => return Err(DataError::io("open shard file", e)),
        };
        let file_len = f.metadata().map_err(|e| DataError::io("stat shard file", e))?.len();
        let mut head = [0u8; HEADER_LEN_V1];
        let head_len = (HEADER_LEN_V1 as u64).min(file_len) as usize;
        f.read_exact(&mut head[..head_len]).map_err(|e| DataError::io("read shard header", e))?;
        let (header, header_len) = ShardHeader::decode(&head[..head_len])?;
        if header.key != *key {
            return Err(DataError::Corrupt("header names a different shard".into()));
        }
        if Some(file_len) != header.payload_len.checked_add(header_len as u64) {
            return Err(DataError::Corrupt(format!(
                "file holds {} payload bytes, header says {}",
                file_len.saturating_sub(header_len as u64),
                header.payload_len
            )));
        }
        let len = usize::try_from(header.payload_len).map_err(|_| DataError::Corrupt("payload too large".into()))?;
        let mut data = vec![0u8; len];
        f.read_exact(&mut data).map_err(|e| DataError::io("read shard payload", e))?;
        let actual = crc32c::crc32c(&data);
        if actual != header.payload_crc {
            return Err(DataError::Corrupt(format!(
                "payload checksum mismatch: header {:08x}, computed {actual:08x}",
                header.payload_crc
            )));
        }
        Ok((data, actual))
    }

    fn delete(&self, key: &ShardKey) -> Result<bool, DataError> {
        let _key_lock = self.stripe(key);
        let (dir, path) = self.shard_path(key);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(DataError::io("stat shard file", e)),
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(DataError::io("remove shard file", e)),
        }
        {
            let mut acct = self.acct();
            acct.used_bytes = acct.used_bytes.saturating_sub(len);
            acct.shard_count = acct.shard_count.saturating_sub(1);
        }
        sync_dir(&dir)?;
        Ok(true)
    }

    fn list(&self) -> Result<Vec<ShardKey>, DataError> {
        let mut keys = Vec::new();
        self.scan(|_, _, key| {
            keys.extend(key);
            Ok(())
        })?;
        keys.sort_unstable();
        Ok(keys)
    }

    fn usage(&self) -> Usage {
        let fs_free = match self.capacity_limit {
            Some(_) => 0,
            None => available_bytes(&self.shards).unwrap_or_else(|e| {
                tracing::debug!(error = %e.chain(), "cannot query free space");
                0
            }),
        };
        let acct = self.acct();
        Usage {
            used_bytes: acct.used_bytes,
            capacity_bytes: self.capacity_limit.unwrap_or(acct.used_bytes + fs_free),
            shard_count: acct.shard_count,
        }
    }
}

#[cfg(test)]
#[path = "file_store_tests.rs"]
mod tests;
