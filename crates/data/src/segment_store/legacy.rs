//! Shard files of the per-file stores (`DIR/shards/<xx>/<key>`, shard
//! format versions 1 and 2) migrated into segments when the store opens.
//!
//! Each file is read and verified, appended as a record with sequence
//! number 0 (so anything the segment store writes itself wins over it), and
//! removed once its batch is durable; the directories are synced before the
//! store serves a request. A crash midway leaves some files not yet
//! removed: the next start migrates them again, and the duplicate (same
//! sequence number) is dead space. A file that fails verification is not
//! migrated: it stays where it is and the store serves it as it is (reads
//! say it is corrupt, so scrub repairs it; a put or delete of its key
//! removes it).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use shardline_types::ShardKey;

use super::writer::{Body, Entry, WriterClient};
use crate::disk::sync_dir;
use crate::shard_dir::{subdir_name, TMP_SUFFIX};
use crate::shard_format::ShardHeader;
use crate::DataError;

/// Migrated files go to the writer in requests of about this many bytes.
const MIGRATE_BATCH: usize = 16 << 20;

/// A legacy shard file left in place (it failed verification).
#[derive(Debug, Clone)]
pub(crate) struct LegacyFile {
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    pub(crate) mtime: SystemTime,
}

/// Migrate every shard file under `dir/shards` into segments; returns the
/// files that failed verification and stay.
pub(crate) fn migrate(dir: &Path, writer: &WriterClient) -> Result<BTreeMap<ShardKey, LegacyFile>, DataError> {
    let root = dir.join("shards");
    let subdirs = match fs::read_dir(&root) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(DataError::io("list legacy shard directory", e)),
    };
    let mut leftovers = BTreeMap::new();
    let mut batch: Vec<(Entry, PathBuf)> = Vec::new();
    let mut pending = 0;
    let mut touched = BTreeSet::new();
    let (mut migrated, mut bytes) = (0u64, 0u64);
    for sub in subdirs {
        let sub = sub.map_err(|e| DataError::io("list legacy shard directory", e))?.path();
        if !sub.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&sub).map_err(|e| DataError::io("list legacy shard directory", e))? {
            let entry = entry.map_err(|e| DataError::io("list legacy shard directory", e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name.ends_with(TMP_SUFFIX) {
                fs::remove_file(&path).map_err(|e| DataError::io("remove stale temporary file", e))?;
                touched.insert(sub.clone());
                continue;
            }
            let in_place = sub.file_name().and_then(|n| n.to_str()) == Some(subdir_name(&name).as_str());
            let Some(key) = ShardKey::parse_file_name(&name).filter(|_| in_place) else { continue };
            let meta = entry.metadata().map_err(|e| DataError::io("stat legacy shard file", e))?;
            let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
            match read(&path, &key) {
                Ok((data, _)) => {
                    let mtime_ns = mtime.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
                    pending += data.len();
                    bytes += data.len() as u64;
                    batch.push((Entry::Copy { body: Body::migrated(key, &data, mtime_ns)? }, path));
                }
                Err(DataError::Corrupt(why)) => {
                    tracing::warn!(
                        file_id = key.file_id,
                        chunk = key.chunk_index,
                        shard = key.shard_index,
                        %why,
                        "legacy shard file fails verification; left in place for scrub to repair"
                    );
                    leftovers.insert(key, LegacyFile { path, len: meta.len(), mtime });
                }
                Err(e) => return Err(e),
            }
            if pending >= MIGRATE_BATCH {
                migrated += flush(writer, &mut batch, &mut touched)?;
                pending = 0;
            }
        }
    }
    migrated += flush(writer, &mut batch, &mut touched)?;
    for sub in &touched {
        sync_dir(sub)?;
    }
    // Empty directories go (best effort: a leftover keeps its own).
    if let Ok(subs) = fs::read_dir(&root) {
        for sub in subs.flatten() {
            let _ = fs::remove_dir(sub.path());
        }
    }
    if fs::remove_dir(&root).is_ok() {
        sync_dir(dir)?;
    }
    if migrated > 0 || !leftovers.is_empty() {
        tracing::info!(
            shards = migrated,
            bytes,
            left_in_place = leftovers.len(),
            "migrated shard files of the per-file store into segments"
        );
    }
    Ok(leftovers)
}

/// Append a batch of migrated shards, durably, then remove their files.
fn flush(
    writer: &WriterClient,
    batch: &mut Vec<(Entry, PathBuf)>,
    touched: &mut BTreeSet<PathBuf>,
) -> Result<u64, DataError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let (entries, paths): (Vec<Entry>, Vec<PathBuf>) = std::mem::take(batch).into_iter().unzip();
    writer.submit(entries)?;
    for path in &paths {
        fs::remove_file(path).map_err(|e| DataError::io("remove a migrated shard file", e))?;
        if let Some(parent) = path.parent() {
            touched.insert(parent.to_path_buf());
        }
    }
    Ok(paths.len() as u64)
}

/// Read and verify the legacy shard file at `path` for `key`.
pub(crate) fn read(path: &Path, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
    let mut bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DataError::NotFound),
        Err(e) => return Err(DataError::io("read legacy shard file", e)),
    };
    let (header, format) = ShardHeader::decode(&bytes)?;
    let range = header.check_file(key, format, bytes.len() as u64)?;
    let crc = header.verify_payload(&bytes[range.clone()])?;
    bytes.truncate(range.end);
    bytes.drain(..range.start);
    Ok((bytes, crc))
}

/// Remove a legacy file durably.
pub(crate) fn remove(f: &LegacyFile) -> Result<(), DataError> {
    match fs::remove_file(&f.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DataError::io("remove legacy shard file", e)),
    }
    match f.path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}
