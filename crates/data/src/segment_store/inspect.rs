//! Where each shard of a data folder lies on disk, read without opening
//! (or changing) the store: for tests and tools that look behind a data
//! server's back (to damage a shard on purpose, or count shards per
//! server). Covers both layouts: segment files (the newest record of each
//! key, deleted keys left out) and per-file shard files under `shards/`.
//! A segment being appended to meanwhile is read as far as it is whole.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use shardline_types::ShardKey;

use super::format::{parse_segment_file_name, segment_file_name, Kind};
use super::index::{Index, Pos, Rec};
use super::scan::scan_segment;
use crate::shard_dir::subdir_name;
use crate::shard_format::{ShardHeader, HEADER_LEN_V1};
use crate::DataError;

/// One stored shard and where its payload lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredShard {
    pub key: ShardKey,
    /// The file holding it (a segment, or the shard's own file).
    pub path: PathBuf,
    /// Where its payload starts in that file.
    pub payload_offset: u64,
    pub payload_len: u64,
}

/// Every shard stored under the data folder `dir`, sorted by key.
pub fn stored_shards(dir: &Path) -> Result<Vec<StoredShard>, DataError> {
    let mut out = segment_shards(&dir.join("segments"))?;
    out.extend(file_shards(&dir.join("shards"))?);
    out.sort_by(|a, b| a.key.cmp(&b.key).then(a.path.cmp(&b.path)));
    Ok(out)
}

fn segment_shards(segdir: &Path) -> Result<Vec<StoredShard>, DataError> {
    let entries = match fs::read_dir(segdir) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DataError::io("list segments", e)),
    };
    let mut index = Index::default();
    let mut headers = std::collections::HashMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io("list segments", e))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) else { continue };
        let file = match fs::File::open(entry.path()) {
            Ok(f) => f,
            // Compacted away meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DataError::io("open segment", e)),
        };
        let len = file.metadata().map_err(|e| DataError::io("stat segment", e))?.len();
        let Ok(scan) = scan_segment(&file, len) else { continue };
        for r in scan.records {
            let h = r.header;
            let rec = Rec {
                pos: Pos { seg: id, offset: r.offset },
                len: r.len,
                kind: h.kind,
                seq: h.seq,
                payload_len: h.payload_len,
                crc: h.payload_crc,
                mtime_ns: h.mtime_ns,
                block_log2: h.block_log2,
            };
            index.observe(h.key, rec);
            headers.insert(rec.pos, h);
        }
    }
    let mut out = Vec::new();
    for key in index.keys_sorted() {
        let Some(rec) = index.get(&key) else { continue };
        let Some(h) = headers.get(&rec.pos).filter(|h| h.kind == Kind::Put) else { continue };
        out.push(StoredShard {
            key,
            path: segdir.join(segment_file_name(rec.pos.seg)),
            payload_offset: rec.pos.offset + h.header_len() as u64,
            payload_len: h.payload_len,
        });
    }
    Ok(out)
}

fn file_shards(root: &Path) -> Result<Vec<StoredShard>, DataError> {
    let subdirs = match fs::read_dir(root) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DataError::io("list shard directory", e)),
    };
    let mut out = Vec::new();
    for sub in subdirs.flatten() {
        let Ok(files) = fs::read_dir(sub.path()) else { continue };
        for f in files.flatten() {
            let Some(name) = f.file_name().to_str().map(str::to_owned) else { continue };
            let in_place = sub.file_name().to_str() == Some(subdir_name(&name).as_str());
            let Some(key) = ShardKey::parse_file_name(&name).filter(|_| in_place) else { continue };
            let mut head = [0u8; HEADER_LEN_V1];
            let read = fs::File::open(f.path()).and_then(|mut file| io::Read::read_exact(&mut file, &mut head));
            let Ok(()) = read else { continue };
            let Ok((h, format)) = ShardHeader::decode(&head) else { continue };
            out.push(StoredShard {
                key,
                path: f.path(),
                payload_offset: format.header_len() as u64,
                payload_len: h.payload_len,
            });
        }
    }
    Ok(out)
}
