//! Start-up: rebuild the index from the segment files.
//!
//! Every segment is scanned (record headers only) and its records fed to
//! the index. The newest segment's tail is settled first: a write torn by a
//! crash is cut away, durably, before anything is appended after it (so
//! that no stale byte beyond the new end can come back later). A region
//! that fails its checks elsewhere is logged as an error: the records in it
//! are lost, every other record is kept. A newest segment whose header
//! never became durable (a crash while it was being created, so it holds no
//! acknowledged record) is removed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use super::format::{parse_segment_file_name, segment_file_name, SEGMENT_HEADER_LEN};
use super::index::{Index, Pos, Rec};
use super::scan::{scan_segment, settle_tail, Scan};
use super::writer::open_for_reads;
use crate::disk::sync_dir;
use crate::DataError;

/// What start-up found.
pub(crate) struct Recovered {
    pub(crate) index: Index,
    /// Read descriptors of every usable segment.
    pub(crate) files: HashMap<u64, Arc<File>>,
    /// The newest segment, if usable (appends may continue in it): (id,
    /// valid end, record alignment).
    pub(crate) last: Option<(u64, u64, u32)>,
    /// The highest sequence number ever written (torn records included).
    pub(crate) max_seq: u64,
    /// The highest segment id present (usable or not).
    pub(crate) max_id: Option<u64>,
}

/// Scan every segment under `dir` and rebuild the index.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, DataError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io("list segments", e))? {
        let entry = entry.map_err(|e| DataError::io("list segments", e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let mut out = Recovered {
        index: Index::default(),
        files: HashMap::new(),
        last: None,
        max_seq: 0,
        max_id: ids.last().copied(),
    };
    let newest = ids.last().copied();
    for id in ids {
        let path = dir.join(segment_file_name(id));
        let file = open_for_reads(&path)?;
        let file_len = file.metadata().map_err(|e| DataError::io("stat segment", e))?.len();
        let mut scan = match scan_segment(&file, file_len) {
            Ok(scan) if scan.header.id == id => scan,
            Ok(_) => {
                tracing::error!(segment = id, "segment header names another segment; skipping the file");
                continue;
            }
            Err(DataError::Corrupt(why)) => {
                if Some(id) == newest && file_len <= SEGMENT_HEADER_LEN {
                    tracing::warn!(segment = id, %why, "removing a segment whose creation a crash interrupted");
                    fs::remove_file(&path).map_err(|e| DataError::io("remove an unfinished segment", e))?;
                    sync_dir(dir)?;
                } else {
                    tracing::error!(segment = id, %why, "segment header is damaged; its shards cannot be read");
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        out.max_seq = scan.records.iter().map(|r| r.header.seq).fold(out.max_seq, u64::max);
        let end = if Some(id) == newest { settle_newest(&path, &file, &mut scan)? } else { file_len };
        for &(start, stop) in &scan.bad {
            tracing::error!(
                segment = id,
                start,
                end = stop,
                "segment region failed its checks; the shards recorded in it are lost (the rest are kept)"
            );
        }
        for r in &scan.records {
            let h = &r.header;
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
            out.index.observe(h.key, rec);
        }
        out.index.set_segment_end(id, end);
        out.files.insert(id, Arc::new(file));
        if Some(id) == newest {
            out.last = Some((id, end, scan.header.align));
        }
    }
    Ok(out)
}

/// Settle the newest segment's tail and cut the file to it, durably.
fn settle_newest(path: &Path, file: &File, scan: &mut Scan) -> Result<u64, DataError> {
    let tail = settle_tail(file, scan)?;
    if tail.end == scan.file_len && tail.torn_at.is_none() {
        return Ok(tail.end);
    }
    if let Some(at) = tail.torn_at {
        tracing::warn!(
            segment = scan.header.id,
            offset = at,
            dropped_records = tail.dropped,
            "cut away a write torn by a crash at the end of the newest segment (it was never acknowledged)"
        );
    }
    let f = OpenOptions::new().write(true).open(path).map_err(|e| DataError::io("open segment to cut its tail", e))?;
    let cut_at = tail.torn_at.unwrap_or(tail.end).min(scan.file_len);
    f.set_len(cut_at)
        .and_then(|()| f.set_len(tail.end))
        .and_then(|()| f.sync_all())
        .map_err(|e| DataError::io("cut a torn tail off the newest segment", e))?;
    scan.file_len = tail.end;
    Ok(tail.end)
}
