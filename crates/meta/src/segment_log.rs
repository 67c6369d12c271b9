//! The Raft log on disk: append-only segment files (`segment.rs`) in one
//! folder, `<seq, 20 digits>.seg`. Each batch is one `write` and, when it
//! must be durable, one `fdatasync`, however many entries it holds. A new
//! segment is preallocated (`fallocate`), so appending does not grow the
//! file and the fsync has less file-system metadata to write.
//!
//! Entries are never rewritten in place: when a leader replaces a suffix, the
//! new entries are appended and replay lets a later record for an index
//! supersede everything from that index on. Compaction deletes whole
//! segments whose entries a snapshot covers; the active segment is rotated
//! past [`SEGMENT_BYTES`] and every new segment starts with the latest hard
//! state, so deleting older ones never loses it. A snapshot received from
//! the leader replaces the log: the new log gets the next generation (the
//! store records it first), and segments of other generations are ignored
//! and deleted on open.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::segment::{self, Header, Tail, KIND_ENTRY, KIND_ENTRY_TERM, KIND_HARD_STATE};
use crate::MetaError;

/// Segments are preallocated to this size and rotated once they pass it.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// A record as replayed, in the order it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A log entry as stored (sealed), at `index`, of `term` (None: a
    /// record of a version-1 segment, written before the term was stored).
    Entry { index: u64, term: Option<u64>, stored: Vec<u8> },
    /// The hard state's protobuf bytes.
    HardState(Vec<u8>),
}

struct Segment {
    seq: u64,
    path: PathBuf,
    /// Highest entry index written in it (0: none).
    last_index: u64,
}

pub struct SegmentLog {
    dir: PathBuf,
    generation: u64,
    /// Oldest first; the last one is the active segment.
    segments: Vec<Segment>,
    active: File,
    active_len: u64,
    /// Records of the batch being built.
    buf: Vec<u8>,
    buf_last_index: u64,
    /// The latest hard state written (repeated at the start of each segment).
    hard_state: Option<Vec<u8>>,
    segment_bytes: u64,
}

impl SegmentLog {
    /// Open the log of `generation` in `dir` (created if missing) and replay
    /// it. A torn tail of the last segment is cut off; damage anywhere else
    /// is an error. Segments of other generations are deleted.
    pub fn open(dir: &Path, generation: u64) -> Result<(SegmentLog, Vec<Record>), MetaError> {
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let path = e?.path();
            let seq = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".seg"));
            if let Some(seq) = seq.and_then(|s| s.parse::<u64>().ok()) {
                found.push((seq, path));
            }
        }
        found.sort();
        // Read every segment; keep those of this generation.
        let mut mine = Vec::new();
        let total = found.len();
        for (i, (seq, path)) in found.into_iter().enumerate() {
            let bytes = std::fs::read(&path)?;
            let header = match Header::decode(&bytes) {
                // A crash right after creating the newest segment can leave
                // it shorter than its header: it holds nothing.
                Err(_) if i + 1 == total && bytes.len() < segment::HEADER_LEN => {
                    std::fs::remove_file(&path)?;
                    continue;
                }
                r => r.map_err(|e| MetaError::Store(format!("{}: {e}", path.display())))?,
            };
            if header.seq != seq || header.generation > generation {
                return Err(MetaError::Store(format!(
                    "{}: segment {} of log generation {} does not belong here (expected generation {generation})",
                    path.display(),
                    header.seq,
                    header.generation
                )));
            }
            if header.generation < generation {
                // Left behind by a snapshot install that was cut short.
                std::fs::remove_file(&path)?;
                continue;
            }
            mine.push((seq, path, bytes, header.version));
        }
        let mut records = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        let count = mine.len();
        let mut end = 0;
        let mut active_version = segment::VERSION;
        for (i, (seq, path, bytes, version)) in mine.into_iter().enumerate() {
            active_version = version;
            let scan = segment::scan(&bytes);
            let last = i + 1 == count;
            match scan.tail {
                Tail::Clean => {}
                Tail::Torn if last => {
                    tracing::warn!(segment = %path.display(), at = scan.valid_end,
                        "raft log: cut a torn tail (a write interrupted by a crash)");
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(scan.valid_end as u64)?;
                    f.sync_all()?;
                }
                Tail::Torn | Tail::Damaged => {
                    return Err(MetaError::Store(format!(
                        "raft log {} is damaged at byte {} (a record fails its checksum{}); \
                         restore this server from its peers",
                        path.display(),
                        scan.valid_end,
                        if last { " and later records are intact" } else { " in a segment that was complete" }
                    )))
                }
            }
            end = scan.valid_end as u64;
            let mut last_index = 0;
            for r in scan.records {
                let payload = &bytes[r.payload];
                records.push(match r.kind {
                    KIND_ENTRY if payload.len() >= 8 => {
                        let index = segment::le64(payload);
                        last_index = last_index.max(index);
                        Record::Entry { index, term: None, stored: payload[8..].to_vec() }
                    }
                    KIND_ENTRY_TERM if payload.len() >= 16 => {
                        let index = segment::le64(payload);
                        last_index = last_index.max(index);
                        Record::Entry {
                            index,
                            term: Some(segment::le64(&payload[8..])),
                            stored: payload[16..].to_vec(),
                        }
                    }
                    KIND_HARD_STATE => Record::HardState(payload.to_vec()),
                    _ => return Err(MetaError::Store(format!("{}: malformed record", path.display()))),
                });
            }
            segments.push(Segment { seq, path, last_index });
        }
        let hard_state = records.iter().rev().find_map(|r| match r {
            Record::HardState(b) => Some(b.clone()),
            Record::Entry { .. } => None,
        });
        let (active, active_len) = match segments.last() {
            // A version-1 segment takes no kind-3 record (an older build
            // would cut them off as a torn tail): continue in a new one.
            Some(s) if active_version != segment::VERSION => {
                let (seg, f) = create_segment(dir, generation, s.seq + 1, SEGMENT_BYTES)?;
                let mut len = segment::HEADER_LEN as u64;
                if let Some(hs) = &hard_state {
                    let mut rec = Vec::new();
                    segment::encode_record(&mut rec, KIND_HARD_STATE, &[hs]);
                    f.write_all_at(&rec, len)?;
                    f.sync_data()?;
                    len += rec.len() as u64;
                }
                segments.push(seg);
                (f, len)
            }
            Some(s) => {
                let f = OpenOptions::new().read(true).write(true).open(&s.path)?;
                preallocate(&f, SEGMENT_BYTES);
                (f, end)
            }
            None => {
                let (seg, f) = create_segment(dir, generation, 1, SEGMENT_BYTES)?;
                segments.push(seg);
                (f, segment::HEADER_LEN as u64)
            }
        };
        let log = SegmentLog {
            dir: dir.to_path_buf(),
            generation,
            segments,
            active,
            active_len,
            buf: Vec::new(),
            buf_last_index: 0,
            hard_state,
            segment_bytes: SEGMENT_BYTES,
        };
        Ok((log, records))
    }

    #[cfg(test)]
    pub fn set_segment_bytes(&mut self, n: u64) {
        self.segment_bytes = n;
    }

    /// Add an entry of `term` (as stored: sealed) to the batch.
    pub fn push_entry(&mut self, index: u64, term: u64, stored: &[u8]) {
        segment::encode_record(&mut self.buf, KIND_ENTRY_TERM, &[&index.to_le_bytes(), &term.to_le_bytes(), stored]);
        self.buf_last_index = self.buf_last_index.max(index);
    }

    /// Add the hard state (protobuf bytes) to the batch.
    pub fn push_hard_state(&mut self, hs: &[u8]) {
        segment::encode_record(&mut self.buf, KIND_HARD_STATE, &[hs]);
        self.hard_state = Some(hs.to_vec());
    }

    /// With `sync`, write the batch in one call and fdatasync it (the
    /// return value counts fsyncs, a rotation's included). Without, keep it
    /// for the next synced write (only a hard state whose commit index
    /// moved is ever left waiting: Raft does not need that durable). So
    /// everything in the file before its last write is durable, and only
    /// that last write can be torn by a crash.
    pub fn flush(&mut self, sync: bool) -> Result<u64, MetaError> {
        if self.buf.is_empty() || !sync {
            return Ok(0);
        }
        let mut fsyncs = 0;
        if self.active_len >= self.segment_bytes {
            fsyncs += self.rotate()?;
        }
        self.active.write_all_at(&self.buf, self.active_len)?;
        self.active_len += self.buf.len() as u64;
        if let Some(s) = self.segments.last_mut() {
            s.last_index = s.last_index.max(self.buf_last_index);
        }
        self.buf.clear();
        self.buf_last_index = 0;
        self.active.sync_data()?;
        Ok(fsyncs + 1)
    }

    /// Close the active segment (durably) and start the next one with the
    /// latest hard state.
    fn rotate(&mut self) -> Result<u64, MetaError> {
        // Everything written is durable already (each write is synced);
        // give back the unused preallocated space.
        self.active.set_len(self.active_len)?;
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let (seg, f) = create_segment(&self.dir, self.generation, seq, self.segment_bytes)?;
        let mut len = segment::HEADER_LEN as u64;
        if let Some(hs) = &self.hard_state {
            let mut rec = Vec::new();
            segment::encode_record(&mut rec, KIND_HARD_STATE, &[hs]);
            f.write_all_at(&rec, len)?;
            len += rec.len() as u64;
        }
        self.segments.push(seg);
        self.active = f;
        self.active_len = len;
        Ok(3)
    }

    /// Delete the segments (never the active one) holding only entries at
    /// or below `to`.
    pub fn compact(&mut self, to: u64) -> Result<(), MetaError> {
        while self.segments.len() > 1 && self.segments[0].last_index <= to {
            let s = self.segments.remove(0);
            std::fs::remove_file(&s.path)?;
        }
        Ok(())
    }

    /// Replace the whole log with an empty one of `generation` holding only
    /// `hard_state` (after a snapshot from the leader; the caller has
    /// recorded the new generation first).
    pub fn reset(&mut self, generation: u64, hard_state: &[u8]) -> Result<(), MetaError> {
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        for s in self.segments.drain(..) {
            std::fs::remove_file(&s.path)?;
        }
        self.generation = generation;
        let (seg, f) = create_segment(&self.dir, generation, seq, self.segment_bytes)?;
        self.segments.push(seg);
        self.active = f;
        self.active_len = segment::HEADER_LEN as u64;
        self.buf.clear();
        self.buf_last_index = 0;
        self.push_hard_state(hard_state);
        self.flush(true)?;
        Ok(())
    }

    /// Segment files, oldest first (for tests and diagnostics).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }
}

/// A new, empty segment `seq` of `bytes` preallocated (header written and
/// durable, as is its name in the folder).
fn create_segment(dir: &Path, generation: u64, seq: u64, bytes: u64) -> Result<(Segment, File), MetaError> {
    let path = dir.join(format!("{seq:020}.seg"));
    let f = OpenOptions::new().create_new(true).read(true).write(true).open(&path)?;
    f.write_all_at(&Header { generation, seq, version: segment::VERSION }.encode(), 0)?;
    preallocate(&f, bytes);
    f.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok((Segment { seq, path, last_index: 0 }, f))
}

/// Reserve `bytes` for `f` (reading as zeros), so appends within them do
/// not grow the file. Where the file system cannot, appends grow it instead.
fn preallocate(f: &File, bytes: u64) {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len >= bytes {
        return;
    }
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, bytes as libc::off_t) };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "raft log: no preallocation");
    }
}

#[cfg(test)]
#[path = "segment_log_tests.rs"]
mod tests;
