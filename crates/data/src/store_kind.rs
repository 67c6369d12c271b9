//! Which [`ShardStore`] backend a data server runs, and opening it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::uring_store::uring_available;
use crate::{DataError, FileStore, SegmentConfig, SegmentStore, ShardStore, UringStore};

/// A shard store backend, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// Shards appended to segment files with group commit
    /// ([`SegmentStore`]); opens (and migrates) folders of the per-file
    /// stores.
    #[default]
    Segment,
    /// [`StoreKind::Segment`] with its segments written `O_DIRECT` (records
    /// padded to 4 KiB; no copy into the page cache), falling back to
    /// buffered writes where the file system refuses `O_DIRECT`.
    SegmentDirect,
    /// One file per shard: io_uring with `O_DIRECT` when the kernel allows
    /// it, else the portable file store (with a warning).
    Auto,
    /// io_uring with `O_DIRECT` ([`UringStore`]); fail to start without it.
    Uring,
    /// Buffered files ([`FileStore`]), portable to any POSIX system.
    File,
}

impl FromStr for StoreKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<StoreKind, DataError> {
        match s {
            "segment" => Ok(StoreKind::Segment),
            "segment-direct" => Ok(StoreKind::SegmentDirect),
            "auto" => Ok(StoreKind::Auto),
            "uring" => Ok(StoreKind::Uring),
            "file" => Ok(StoreKind::File),
            other => Err(DataError::Config(format!(
                "unknown store kind {other:?}: expected segment, segment-direct, auto, uring or file"
            ))),
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Segment => "segment",
            StoreKind::SegmentDirect => "segment-direct",
            StoreKind::Auto => "auto",
            StoreKind::Uring => "uring",
            StoreKind::File => "file",
        })
    }
}

/// Open the store of `kind` under `dir` (blocking: call it off the async
/// runtime). `Auto` falls back to [`FileStore`] only when io_uring is
/// unavailable; any other failure is returned.
pub fn open_store(kind: StoreKind, dir: &Path, capacity_bytes: Option<u64>) -> Result<Arc<dyn ShardStore>, DataError> {
    if matches!(kind, StoreKind::Segment | StoreKind::SegmentDirect) {
        let cfg = SegmentConfig { direct_io: kind == StoreKind::SegmentDirect, ..SegmentConfig::default() };
        let store = SegmentStore::open_with(dir, capacity_bytes, cfg, Arc::new(crate::segment_store::OsIo))?;
        tracing::info!(backend = "segment", direct = store.is_direct(), "opened shard store");
        return Ok(Arc::new(store));
    }
    let kind = match kind {
        StoreKind::Auto => match uring_available() {
            Ok(()) => StoreKind::Uring,
            Err(e @ DataError::Config(_)) => {
                tracing::warn!(reason = %e.chain(), "io_uring unavailable; using the buffered file store");
                StoreKind::File
            }
            Err(e) => return Err(e),
        },
        chosen => chosen,
    };
    let store: Arc<dyn ShardStore> = match kind {
        StoreKind::Uring => {
            let store = UringStore::open(dir, capacity_bytes)?;
            tracing::info!(backend = "uring", direct = store.is_direct(), "opened shard store");
            Arc::new(store)
        }
        _ => {
            tracing::info!(backend = "file", "opened shard store");
            Arc::new(FileStore::open(dir, capacity_bytes)?)
        }
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_kind() {
        for kind in [StoreKind::Segment, StoreKind::SegmentDirect, StoreKind::Auto, StoreKind::Uring, StoreKind::File] {
            assert_eq!(kind.to_string().parse::<StoreKind>().unwrap(), kind);
        }
        assert_eq!(StoreKind::default(), StoreKind::Segment);
        assert!(matches!("disk".parse::<StoreKind>(), Err(DataError::Config(_))));
    }

    #[test]
    fn every_kind_opens_a_working_store() {
        for kind in [StoreKind::Segment, StoreKind::SegmentDirect, StoreKind::Auto, StoreKind::Uring, StoreKind::File] {
            if kind == StoreKind::Uring && uring_available().is_err() {
                eprintln!("skipping the uring store kind: io_uring is unavailable here");
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let store = open_store(kind, dir.path(), None).unwrap();
            let data = vec![kind as u8; 5000];
            let key = shardline_types::ShardKey { file_id: 1, chunk_index: 0, version: 1, shard_index: 0 };
            store.put(&key, &data, crc32c::crc32c(&data)).unwrap();
            assert_eq!(store.get(&key).unwrap().0, data, "{kind}");
            let backend = store.backend();
            if matches!(kind, StoreKind::Segment | StoreKind::SegmentDirect) {
                // O_DIRECT exactly when asked for and the file system takes it.
                let probe = dir.path().join("direct-probe");
                let takes_direct = std::os::unix::fs::OpenOptionsExt::custom_flags(
                    std::fs::OpenOptions::new().write(true).create(true),
                    libc::O_DIRECT,
                )
                .open(&probe)
                .is_ok();
                assert_eq!(
                    (backend.name, backend.direct_io),
                    ("segment", kind == StoreKind::SegmentDirect && takes_direct)
                );
            }
        }
    }
}
