//! The directory layout every file-based backend shares.
//!
//! Layout: `DIR/shards/<xx>/<ShardKey::file_name()>`, where `xx` is the low
//! byte, in hex, of the CRC32C of the file name (a frozen function, so the
//! layout never moves). A write goes to `<file name>.<seq>.tmp` in the same
//! subdirectory and is renamed into place; leftovers of a crash end in
//! [`TMP_SUFFIX`] and are removed at the next open.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use shardline_types::ShardKey;

use crate::disk::sync_dir;
use crate::DataError;

/// Suffix of a temporary file being written.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// The subdirectory (of `shards`) holding the shard file named `file_name`.
pub(crate) fn subdir_name(file_name: &str) -> String {
    format!("{:02x}", crc32c::crc32c(file_name.as_bytes()) & 0xff)
}

/// Where shards live under a data directory.
pub(crate) struct ShardDir {
    shards: PathBuf,
    tmp_seq: AtomicU64,
}

impl ShardDir {
    /// Create (if needed) `dir/shards` and its 256 subdirectories, durably.
    pub(crate) fn create(dir: &Path) -> Result<ShardDir, DataError> {
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
        Ok(ShardDir { shards, tmp_seq: AtomicU64::new(0) })
    }

    /// The `shards` directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.shards
    }

    /// Where the shard for `key` lives: (its directory, its path).
    pub(crate) fn shard_path(&self, key: &ShardKey) -> (PathBuf, PathBuf) {
        let name = key.file_name();
        let dir = self.shards.join(subdir_name(&name));
        let path = dir.join(name);
        (dir, path)
    }

    /// A fresh temporary path for a new version of `key`'s shard, in `dir`
    /// (the shard's own directory, so that the rename stays in it).
    pub(crate) fn tmp_path(&self, dir: &Path, key: &ShardKey) -> PathBuf {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        dir.join(format!("{}.{seq}{TMP_SUFFIX}", key.file_name()))
    }

    /// Visit every entry of every shard subdirectory with the parsed key, if
    /// the entry is a shard in its right place.
    pub(crate) fn scan(
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
}
