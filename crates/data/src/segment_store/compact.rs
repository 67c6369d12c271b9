//! Compaction: a sealed segment whose needed bytes fall below the threshold
//! is rewritten. Its newest records are appended again through the writer,
//! keeping their sequence numbers (so a copy and its original are the same
//! record, and a newer put of the key still wins); once the copies are
//! durable the old file is removed and the directory synced.
//!
//! Crash safety at every step: before the copies are durable the original
//! is untouched; between the copies and the removal both exist, and at
//! start-up the copy wins (same sequence number, later position); after the
//! removal only the copies exist. Tombstones are copied while an older
//! record of their key remains elsewhere, and dropped after.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::format::segment_file_name;
use super::index::Pos;
use super::scan::scan_segment;
use super::writer::{Body, Entry, WriterClient};
use super::Shared;
use crate::aligned_buf::AlignedBuf;
use crate::disk::sync_dir;
use crate::DataError;

/// Copies go to the writer in requests of about this many bytes, so puts
/// keep flowing between them.
const COPY_BATCH: usize = 4 << 20;

/// Start the background compactor; it runs until the store stops it.
pub(crate) fn start(shared: Arc<Shared>, writer: WriterClient) -> Result<JoinHandle<()>, DataError> {
    std::thread::Builder::new()
        .name("segment-compactor".into())
        .spawn(move || run(shared, writer))
        .map_err(|e| DataError::io("start the segment compactor", e))
}

fn run(shared: Arc<Shared>, writer: WriterClient) {
    // Segments that failed to compact are left alone until the next start
    // (the failure is logged once).
    let mut failed = HashSet::new();
    loop {
        if shared.compactor.wait(shared.cfg.compact_every) {
            return;
        }
        if !shared.cfg.background_compaction {
            continue;
        }
        loop {
            let next = {
                let st = shared.lock();
                st.index.victims(st.active, shared.cfg.compact_below).into_iter().find(|id| !failed.contains(id))
            };
            let Some(seg) = next else { break };
            if let Err(e) = compact(&shared, &writer, seg) {
                tracing::error!(segment = seg, error = %e.chain(), "could not compact segment; leaving it as it is");
                failed.insert(seg);
            }
            if shared.compactor.stopped() {
                return;
            }
        }
    }
}

/// Compact every segment below the threshold now.
pub(crate) fn compact_all(shared: &Shared, writer: &WriterClient) -> Result<(), DataError> {
    loop {
        let next = {
            let st = shared.lock();
            st.index.victims(st.active, shared.cfg.compact_below).first().copied()
        };
        match next {
            Some(seg) => compact(shared, writer, seg)?,
            None => return Ok(()),
        }
    }
}

/// Rewrite segment `seg`'s newest records elsewhere and remove it.
pub(crate) fn compact(shared: &Shared, writer: &WriterClient, seg: u64) -> Result<(), DataError> {
    let _turn = shared.compacting.lock().unwrap_or_else(|e| e.into_inner());
    let (file, end) = {
        let st = shared.lock();
        let Some(file) = st.files.get(&seg).cloned() else { return Ok(()) };
        let end = st.index.segments().get(&seg).map_or(0, |s| s.end);
        (file, end)
    };
    let scan = scan_segment(&file, end)?;
    let mut copies = Vec::new();
    let mut pending = 0;
    let mut copied_bytes = 0u64;
    for r in &scan.records {
        let pos = Pos { seg, offset: r.offset };
        if !shared.lock().index.needs(&r.header.key, pos) {
            continue;
        }
        let len = r.header.body_len() as usize;
        let mut buf = AlignedBuf::zeroed(len)?;
        file.read_exact_at(&mut buf.as_mut_slice()[..len], r.offset)
            .map_err(|e| DataError::io("read a record to compact", e))?;
        copies.push(Entry::Copy { body: Body::copied(buf, r.header) });
        pending += len;
        copied_bytes += len as u64;
        if pending >= COPY_BATCH {
            writer.submit(std::mem::take(&mut copies))?;
            pending = 0;
        }
    }
    if !copies.is_empty() {
        writer.submit(copies)?;
    }
    // Every newest record now has a durable copy that wins over it.
    {
        let mut st = shared.lock();
        let live = st.index.segments().get(&seg).map_or(0, |s| s.live);
        if live > 0 {
            return Err(DataError::Internal(format!(
                "{live} bytes of the segment are still needed after copying (a record unreadable since start-up?)"
            )));
        }
        st.files.remove(&seg);
    }
    let path = shared.dir.join(segment_file_name(seg));
    std::fs::remove_file(&path).map_err(|e| DataError::io("remove a compacted segment", e))?;
    sync_dir(&shared.dir)?;
    let mut st = shared.lock();
    for r in &scan.records {
        st.index.forget(&r.header.key, Pos { seg, offset: r.offset });
    }
    st.index.remove_segment(seg);
    st.space.invalidate();
    drop(st);
    tracing::debug!(segment = seg, copied_bytes, freed_bytes = end, "compacted segment");
    Ok(())
}
