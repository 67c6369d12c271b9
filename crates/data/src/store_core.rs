//! What every file-per-shard backend shares: the directory layout
//! ([`ShardDir`]), per-key locking, space accounting and the put / delete /
//! list protocol. A backend supplies only how a temporary file is written
//! and how a shard file is read.
//!
//! Operations on one key are serialised by a striped lock so that the space
//! accounting stays exact under concurrent overwrites and deletes; reads take
//! no lock (a rename is atomic). Space is reserved before a write starts, so
//! concurrent puts cannot together overrun the capacity.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use shardline_types::ShardKey;

use crate::disk::{available_bytes, sync_dir};
use crate::shard_dir::{ShardDir, TMP_SUFFIX};
use crate::shard_format::Format;
use crate::{DataError, Usage};

const STRIPES: usize = 64;

#[derive(Debug, Default)]
struct Accounting {
    used_bytes: u64,
    shard_count: u64,
    /// Bytes of writes in flight.
    reserved: u64,
}

/// Shard files under a directory, with their space accounting.
pub(crate) struct StoreCore {
    dir: ShardDir,
    capacity_limit: Option<u64>,
    acct: Mutex<Accounting>,
    stripes: [Mutex<()>; STRIPES],
}

impl StoreCore {
    /// Open (creating if needed) the layout under `dir`. Removes temporary
    /// files left by a crash and counts the shards present from directory
    /// metadata alone. `capacity_bytes`: a limit on the bytes stored; `None`
    /// means whatever the file system has free.
    pub(crate) fn open(dir: &Path, capacity_bytes: Option<u64>) -> Result<StoreCore, DataError> {
        refuse_segment_folder(dir)?;
        let dir = ShardDir::create(dir)?;
        let mut acct = Accounting::default();
        let mut stale = 0u64;
        dir.scan(|sub, name, key| match key {
            Some(_) => {
                let len = fs::metadata(sub.join(name)).map_err(|e| DataError::io("stat shard file", e))?.len();
                acct.used_bytes += len;
                acct.shard_count += 1;
                Ok(())
            }
            None if name.ends_with(TMP_SUFFIX) => {
                fs::remove_file(sub.join(name)).map_err(|e| DataError::io("remove stale temporary file", e))?;
                stale += 1;
                Ok(())
            }
            None => Ok(()),
        })?;
        if stale > 0 {
            tracing::info!(count = stale, "removed temporary files left by an interrupted write");
        }
        tracing::debug!(shards = acct.shard_count, used_bytes = acct.used_bytes, "counted stored shards");
        Ok(StoreCore {
            dir,
            capacity_limit: capacity_bytes,
            acct: Mutex::new(acct),
            stripes: std::array::from_fn(|_| Mutex::new(())),
        })
    }

    /// The `shards` directory.
    pub(crate) fn root(&self) -> &Path {
        self.dir.root()
    }

    /// Where the shard for `key` lives: (its directory, its path).
    pub(crate) fn shard_path(&self, key: &ShardKey) -> (PathBuf, PathBuf) {
        self.dir.shard_path(key)
    }

    /// The put protocol: check the CRC32C, lock the key, reserve room for a
    /// file of `format` holding `data`, let `write_tmp` create and fsync the
    /// temporary file it is given, rename it into place, fsync the directory,
    /// and account. A failed write leaves no file behind.
    pub(crate) fn put_with(
        &self,
        key: &ShardKey,
        data: &[u8],
        crc32c: u32,
        format: Format,
        write_tmp: impl FnOnce(&Path) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let actual = crc32c::crc32c(data);
        if actual != crc32c {
            return Err(DataError::ChecksumMismatch { expected: crc32c, actual });
        }
        let new_len =
            format.file_len(data.len() as u64).ok_or_else(|| DataError::InvalidArgument("shard too large".into()))?;
        let _key_lock = self.stripe(key);
        let (dir, path) = self.dir.shard_path(key);
        let old_len = match fs::metadata(&path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(DataError::io("stat shard file", e)),
        };
        self.reserve(new_len, old_len.unwrap_or(0))?;
        let tmp = self.dir.tmp_path(&dir, key);
        let renamed = write_tmp(&tmp)
            .and_then(|()| fs::rename(&tmp, &path).map_err(|e| DataError::io("rename shard file into place", e)));
        if renamed.is_err() {
            // Best effort: a leftover is removed at the next open anyway.
            let _ = fs::remove_file(&tmp);
        }
        let mut acct = self.acct();
        acct.reserved -= new_len;
        if renamed.is_ok() {
            acct.used_bytes = (acct.used_bytes + new_len).saturating_sub(old_len.unwrap_or(0));
            acct.shard_count += u64::from(old_len.is_none());
        }
        drop(acct);
        renamed?;
        sync_dir(&dir)
    }

    /// Remove `key`'s shard durably; `Ok(false)` if there was none.
    pub(crate) fn delete(&self, key: &ShardKey) -> Result<bool, DataError> {
        let _key_lock = self.stripe(key);
        let (dir, path) = self.dir.shard_path(key);
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

    /// Every stored shard's key, sorted.
    pub(crate) fn list(&self) -> Result<Vec<ShardKey>, DataError> {
        let mut keys = Vec::new();
        self.dir.scan(|_, _, key| {
            keys.extend(key);
            Ok(())
        })?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// The shard file's modification time.
    pub(crate) fn modified(&self, key: &ShardKey) -> Option<std::time::SystemTime> {
        let (_, path) = self.shard_path(key);
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    /// Current space accounting.
    pub(crate) fn usage(&self) -> Usage {
        let fs_free = match self.capacity_limit {
            Some(_) => 0,
            None => available_bytes(self.dir.root()).unwrap_or_else(|e| {
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
            None => available_bytes(self.dir.root())?,
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

/// A folder the segment store has used holds its shards in segment files
/// (its own shard files migrated into them): a per-file store opened on it
/// would see none of them, and serve an empty store.
fn refuse_segment_folder(dir: &Path) -> Result<(), DataError> {
    let Ok(entries) = fs::read_dir(dir.join("segments")) else { return Ok(()) };
    let has_segments =
        entries.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("seg-") && n.ends_with(".log")));
    if has_segments {
        return Err(DataError::Config(
            "this data folder holds a segment store (segments/); open it with the segment store".into(),
        ));
    }
    Ok(())
}

/// The `ShardStore` methods every store answers from its `core: StoreCore`
/// field alike (deletion, listing, accounting, ages).
macro_rules! delegate_to_core {
    () => {
        fn delete(&self, key: &ShardKey) -> Result<bool, DataError> {
            self.core.delete(key)
        }

        fn list(&self) -> Result<Vec<ShardKey>, DataError> {
            self.core.list()
        }

        fn usage(&self) -> Usage {
            self.core.usage()
        }

        fn modified(&self, key: &ShardKey) -> Option<std::time::SystemTime> {
            self.core.modified(key)
        }
    };
}
pub(crate) use delegate_to_core;
