//! The log-structured shard store: shards appended to large segment files
//! with group commit, so that one `fdatasync` covers every shard that
//! arrived while the previous one ran.
//!
//! - `format.rs`: the versioned segment and record formats (a CRC32C per
//!   64 KiB block of payload, so a ranged read verifies only what it reads);
//!   `crc_shift.rs`: the payload's CRC from its blocks' in table lookups.
//! - `writer.rs`: the one thread that appends, syncs and acknowledges;
//!   `io.rs`: its seam to the disk ([`SegmentIo`]), which tests make fail.
//! - `index.rs`: key → newest record, segment → bytes still needed (pure).
//! - `scan.rs` + `recover.rs`: the index rebuilt from the segments at start,
//!   a torn tail cut away.
//! - `compact.rs`: sealed segments mostly dead are rewritten in the
//!   background, the copies durable before the old file goes.
//! - `legacy.rs`: shard files of the per-file stores (`shards/`) are
//!   migrated into segments when the store opens.
//! - `space.rs`: free space cached, not asked of the kernel on every put.
//!
//! Durability is that of the per-file stores: [`ShardStore::put`] returns
//! once the shard's bytes and the file length covering them are durable.
//! Space: `used_bytes` counts the newest records (padding included); dead
//! records (overwritten, deleted) occupy the disk until their segment is
//! compacted, at most about `1 / compact_below` times the live bytes plus the
//! active segment.

mod compact;
mod crc_shift;
mod format;
mod index;
mod io;
mod legacy;
mod recover;
mod scan;
mod space;
mod writer;

pub mod inspect;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shardline_types::ShardKey;

use self::format::{
    align_up, verify_blocks, verify_blocks_in_parts, RecordHeader, BUFFERED_ALIGN, DIRECT_ALIGN, RECORD_FIXED_LEN,
};
use self::index::{Index, Rec};
pub use self::io::{FaultyIo, OsIo, SegmentIo};
use self::legacy::LegacyFile;
use self::space::SpaceCache;
use self::writer::{Active, Body, Entry, Outcome, Writer, WriterClient};
use crate::disk::sync_dir;
use crate::store::{range_within, Backend};
use crate::{DataError, ShardStore, Usage};

/// How a [`SegmentStore`] lays out and maintains its files.
#[derive(Debug, Clone)]
pub struct SegmentConfig {
    /// Start a new segment once the active one would grow past this many
    /// bytes (a single larger record gets a segment of its own size).
    pub segment_bytes: u64,
    /// Write segments with `O_DIRECT`, records padded to 4 KiB, instead of
    /// through the page cache (records 8-byte aligned). Falls back to the
    /// page cache if the file system refuses `O_DIRECT`.
    pub direct_io: bool,
    /// Compact a sealed segment once the share of its bytes still needed
    /// falls below this.
    pub compact_below: f64,
    /// How often the compactor looks for work when nothing wakes it.
    pub compact_every: Duration,
    /// One group commit takes about this many bytes of records at most.
    pub max_batch_bytes: usize,
    /// Compact in the background when records die (off: only when asked,
    /// `compact_now`, for tests that need compaction at a known point).
    pub background_compaction: bool,
}

impl Default for SegmentConfig {
    /// 256 MiB segments written through the page cache (measured faster
    /// than `O_DIRECT` here for small and 1 MiB shards alike: see
    /// docs/performance.md, "Shard store"), compacted below half live.
    fn default() -> Self {
        SegmentConfig {
            segment_bytes: 256 << 20,
            direct_io: false,
            compact_below: 0.5,
            compact_every: Duration::from_secs(10),
            max_batch_bytes: 8 << 20,
            background_compaction: true,
        }
    }
}

/// What the store's threads share.
pub(crate) struct Shared {
    /// The `segments` directory.
    pub(crate) dir: PathBuf,
    pub(crate) cfg: SegmentConfig,
    pub(crate) capacity: Option<u64>,
    pub(crate) io: Arc<dyn SegmentIo>,
    state: Mutex<State>,
    direct: AtomicBool,
    compactor: Poke,
    /// Held while a segment is compacted (the background compactor and
    /// [`SegmentStore::compact_now`] take turns).
    compacting: Mutex<()>,
}

/// Everything behind the store's one lock (held only for bookkeeping, never
/// across I/O).
pub(crate) struct State {
    pub(crate) index: Index,
    /// Read descriptors by segment id (an `Arc`, so a read in progress
    /// survives its segment's removal).
    pub(crate) files: std::collections::HashMap<u64, Arc<File>>,
    /// The segment being appended to (never compacted).
    pub(crate) active: u64,
    /// Bytes reserved by puts in flight.
    pub(crate) reserved: u64,
    pub(crate) space: SpaceCache,
    /// Legacy shard files that failed verification and were not migrated.
    pub(crate) legacy: BTreeMap<ShardKey, LegacyFile>,
    /// Why the store refuses writes (a failed write could not be undone).
    pub(crate) failed: Option<String>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    pub(crate) fn set_direct(&self, on: bool) {
        self.direct.store(on, Ordering::Relaxed);
    }

    /// Wake the compactor (records died, or a segment was sealed).
    pub(crate) fn poke_compactor(&self) {
        self.compactor.poke();
    }

    /// Record alignment of the segments the store writes now.
    fn align(&self) -> u32 {
        if self.direct() {
            DIRECT_ALIGN
        } else {
            BUFFERED_ALIGN
        }
    }
}

/// A flag and a condition variable: the compactor's doorbell.
#[derive(Default)]
pub(crate) struct Poke {
    flags: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Poke {
    fn poke(&self) {
        self.flags.lock().unwrap_or_else(|e| e.into_inner()).0 = true;
        self.cv.notify_all();
    }

    fn stop(&self) {
        self.flags.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.cv.notify_all();
    }

    /// Wait until poked, stopped or `timeout`; true if stopped.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let guard = self.flags.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) =
            self.cv.wait_timeout_while(guard, timeout, |f| !f.0 && !f.1).unwrap_or_else(|e| e.into_inner());
        guard.0 = false;
        guard.1
    }

    pub(crate) fn stopped(&self) -> bool {
        self.flags.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

/// Shards appended to segment files under `DIR/segments`.
pub struct SegmentStore {
    shared: Arc<Shared>,
    writer: Option<WriterClient>,
    writer_thread: Option<JoinHandle<()>>,
    compactor_thread: Option<JoinHandle<()>>,
}

impl SegmentStore {
    /// Open (creating if needed) the store under `dir`: rebuild the index
    /// from the segments, cut a torn tail, migrate shard files of the
    /// per-file stores, start the writer and the compactor.
    /// `capacity_bytes`: a limit on the bytes stored; `None` means whatever
    /// the file system has free.
    pub fn open(dir: &Path, capacity_bytes: Option<u64>) -> Result<SegmentStore, DataError> {
        Self::open_with(dir, capacity_bytes, SegmentConfig::default(), Arc::new(OsIo))
    }

    /// As [`open`](Self::open), with a configuration and a disk seam.
    pub fn open_with(
        dir: &Path,
        capacity_bytes: Option<u64>,
        cfg: SegmentConfig,
        io: Arc<dyn SegmentIo>,
    ) -> Result<SegmentStore, DataError> {
        if cfg.segment_bytes < 2 * format::SEGMENT_HEADER_LEN || !(0.0..=1.0).contains(&cfg.compact_below) {
            return Err(DataError::Config("segment size or compaction threshold out of range".into()));
        }
        let segdir = dir.join("segments");
        if !segdir.is_dir() {
            std::fs::create_dir_all(&segdir).map_err(|e| DataError::io("create segment directory", e))?;
            sync_dir(dir)?;
        }
        let found = recover::recover(&segdir)?;
        let shared = Arc::new(Shared {
            dir: segdir.clone(),
            capacity: capacity_bytes,
            io,
            state: Mutex::new(State {
                index: found.index,
                files: found.files,
                active: 0,
                reserved: 0,
                space: SpaceCache::new(segdir.clone()),
                legacy: BTreeMap::new(),
                failed: None,
            }),
            direct: AtomicBool::new(cfg.direct_io),
            compactor: Poke::default(),
            compacting: Mutex::new(()),
            cfg,
        });
        let mut next_segment = found.max_id.map_or(1, |id| id + 1);
        let reuse = found
            .last
            .filter(|&(_, end, align)| end < shared.cfg.segment_bytes && !(align == BUFFERED_ALIGN && shared.direct()));
        let active = match reuse {
            Some((id, end, align)) => {
                let path = segdir.join(format::segment_file_name(id));
                let (file, _) = writer::open_for_appends(&shared, &path, false)?;
                Active { file, id, end, align }
            }
            None => {
                let id = next_segment;
                next_segment += 1;
                let (file, align) = writer::create_segment(&shared, id)?;
                let read = writer::open_for_reads(&segdir.join(format::segment_file_name(id)))?;
                let mut st = shared.lock();
                st.files.insert(id, Arc::new(read));
                st.index.set_segment_end(id, format::SEGMENT_HEADER_LEN);
                Active { file, id, end: format::SEGMENT_HEADER_LEN, align }
            }
        };
        shared.lock().active = active.id;
        let writer = Writer { shared: shared.clone(), active, next_seq: found.max_seq + 1, next_segment };
        let (client, writer_thread) = writer.start()?;
        let mut store =
            SegmentStore { shared, writer: Some(client), writer_thread: Some(writer_thread), compactor_thread: None };
        let leftovers = legacy::migrate(dir, store.client()?)?;
        store.shared.lock().legacy = leftovers;
        store.compactor_thread = Some(compact::start(store.shared.clone(), store.client()?.clone())?);
        let (bytes, shards) = store.shared.lock().index.totals();
        tracing::debug!(shards, bytes, "opened the segment store");
        Ok(store)
    }

    /// Whether segments are written with `O_DIRECT` now.
    pub fn is_direct(&self) -> bool {
        self.shared.direct()
    }

    /// Compact every sealed segment below the threshold now, and wait
    /// (the background compactor does the same on its own).
    pub fn compact_now(&self) -> Result<(), DataError> {
        compact::compact_all(&self.shared, self.client()?)
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.shared.lock().index.segments().len()
    }

    /// Bytes of the segment files (their valid parts), dead records included.
    pub fn file_bytes(&self) -> u64 {
        self.shared.lock().index.segments().values().map(|s| s.end).sum()
    }

    fn client(&self) -> Result<&WriterClient, DataError> {
        self.writer.as_ref().ok_or_else(|| DataError::Internal("the segment writer stopped".into()))
    }

    /// Reserve room for a record of `len` bytes replacing `key`'s shard.
    fn reserve(&self, key: &ShardKey, len: u64) -> Result<(), DataError> {
        let mut st = self.shared.lock();
        if let Some(why) = &st.failed {
            return Err(DataError::Io {
                context: "write to the segment store",
                source: std::io::Error::other(why.clone()),
            });
        }
        let old = st.index.get(key).map_or(0, |r| r.len);
        let headroom = 2 * self.shared.cfg.segment_bytes;
        let available = |st: &mut State| -> u64 {
            match self.shared.capacity {
                Some(cap) => cap.saturating_add(old).saturating_sub(used_bytes(st) + st.reserved),
                None => st.space.free().saturating_sub(st.reserved + headroom),
            }
        };
        let mut room = available(&mut st);
        if len > room && self.shared.capacity.is_none() {
            // Ask the kernel before refusing: space may have been freed.
            st.space.refresh();
            room = available(&mut st);
        }
        if len > room {
            return Err(DataError::NoSpace { needed: len, available: room });
        }
        st.reserved += len;
        Ok(())
    }

    /// Where `key`'s shard is: its record and the segment's read descriptor.
    fn locate(&self, key: &ShardKey) -> Result<(Rec, Arc<File>), Located> {
        let st = self.shared.lock();
        if let Some(rec) = st.index.get(key) {
            let file = st.files.get(&rec.pos.seg).cloned().ok_or(Located::Missing)?;
            return Ok((rec, file));
        }
        match st.legacy.get(key) {
            Some(f) => Err(Located::Legacy(f.path.clone())),
            None => Err(Located::Missing),
        }
    }

    /// Read and check `key`'s record header (fixed fields and block table).
    fn read_header(&self, key: &ShardKey, rec: &Rec, file: &File) -> Result<(RecordHeader, Vec<u8>), DataError> {
        let blocks = rec.payload_len.div_ceil(1 << rec.block_log2) as usize;
        let mut head = vec![0u8; RECORD_FIXED_LEN + 4 * blocks];
        io::preadv_exact(file, &mut [&mut head], rec.pos.offset).map_err(read_err)?;
        let h = check_header(key, rec, &head)?;
        Ok((h, head))
    }

    /// Remove `key`'s legacy file, if it has one; whether it had.
    fn drop_legacy(&self, key: &ShardKey) -> Result<bool, DataError> {
        let Some(f) = self.shared.lock().legacy.remove(key) else {
            return Ok(false);
        };
        legacy::remove(&f)?;
        Ok(true)
    }
}

/// Why a key has no record in the index.
enum Located {
    Missing,
    /// A legacy file that failed verification at start-up.
    Legacy(PathBuf),
}

fn used_bytes(st: &State) -> u64 {
    st.index.totals().0 + st.legacy.values().map(|f| f.len).sum::<u64>()
}

/// Check a record header read for `key` against what the index says.
fn check_header(key: &ShardKey, rec: &Rec, head: &[u8]) -> Result<RecordHeader, DataError> {
    let h = RecordHeader::decode(head).map_err(|e| match e {
        format::HeaderError::Bad(why) => DataError::Corrupt(why.into()),
        format::HeaderError::Short(_) => DataError::Corrupt("record header shorter than indexed".into()),
    })?;
    if h.key != *key {
        return Err(DataError::Corrupt("record names a different shard".into()));
    }
    if h.payload_len != rec.payload_len || h.seq != rec.seq || h.kind != format::Kind::Put {
        return Err(DataError::Corrupt("record header does not match the index".into()));
    }
    Ok(h)
}

fn read_err(e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        DataError::Corrupt("record extends past the end of its segment".into())
    } else {
        DataError::io("read segment", e)
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl ShardStore for SegmentStore {
    fn put(&self, key: &ShardKey, data: &[u8], crc32c: u32) -> Result<(), DataError> {
        let (body, actual) = Body::put(*key, data, now_ns())?;
        if actual != crc32c {
            return Err(DataError::ChecksumMismatch { expected: crc32c, actual });
        }
        let reserved = body.padded(self.shared.align());
        self.reserve(key, reserved)?;
        self.client()?.submit(vec![Entry::Put { body, reserved }])?;
        self.drop_legacy(key)?;
        Ok(())
    }

    fn get(&self, key: &ShardKey) -> Result<(Vec<u8>, u32), DataError> {
        let (rec, file) = match self.locate(key) {
            Ok(found) => found,
            Err(Located::Missing) => return Err(DataError::NotFound),
            Err(Located::Legacy(path)) => return legacy::read(&path, key),
        };
        let blocks = rec.payload_len.div_ceil(1 << rec.block_log2) as usize;
        let mut head = vec![0u8; RECORD_FIXED_LEN + 4 * blocks];
        let len = usize::try_from(rec.payload_len).map_err(|_| DataError::Corrupt("shard too large".into()))?;
        let data = io::pread_head_and_vec(&file, &mut head, len, rec.pos.offset).map_err(read_err)?;
        let h = check_header(key, &rec, &head)?;
        verify_blocks(&head[RECORD_FIXED_LEN..], 0, &data, h.block_len())?;
        Ok((data, h.payload_crc))
    }

    fn get_range(&self, key: &ShardKey, offset: u64, len: u64) -> Result<(Vec<u8>, u64), DataError> {
        let (rec, file) = match self.locate(key) {
            Ok(found) => found,
            Err(Located::Missing) => return Err(DataError::NotFound),
            Err(Located::Legacy(path)) => {
                let (data, _) = legacy::read(&path, key)?;
                let (start, end) = range_within(offset, len, data.len() as u64)?;
                return Ok((data[start..end].to_vec(), data.len() as u64));
            }
        };
        let (start, end) = range_within(offset, len, rec.payload_len)?;
        let (h, head) = self.read_header(key, &rec, &file)?;
        if start == end {
            return Ok((Vec::new(), rec.payload_len));
        }
        // Read whole blocks around the range, and check only those.
        let block = h.block_len() as u64;
        let first = start as u64 / block;
        let span_start = first * block;
        let span_end = align_up(end as u64, block).min(rec.payload_len);
        // The bytes before and after the range (within its first and last
        // blocks) are read into their own buffers, so the range lands at
        // the start of its own vector: no copy to cut it out.
        let at = rec.pos.offset + h.header_len() as u64 + span_start;
        let mut lead = vec![0u8; start - span_start as usize];
        let mut tail = vec![0u8; span_end as usize - end];
        let data = io::pread_parts_and_vec(&file, &mut lead, end - start, &mut tail, at).map_err(read_err)?;
        verify_blocks_in_parts(&head[RECORD_FIXED_LEN..], first as usize, &[&lead, &data, &tail], block as usize)?;
        Ok((data, rec.payload_len))
    }

    fn delete(&self, key: &ShardKey) -> Result<bool, DataError> {
        let had_legacy = self.drop_legacy(key)?;
        if self.shared.lock().index.get(key).is_none() {
            return Ok(had_legacy);
        }
        let outcome = self.client()?.submit(vec![Entry::Delete { key: *key }])?;
        Ok(had_legacy || outcome.first() == Some(&Outcome::Deleted(true)))
    }

    fn list(&self) -> Result<Vec<ShardKey>, DataError> {
        let st = self.shared.lock();
        let mut keys = st.index.keys_sorted();
        if !st.legacy.is_empty() {
            keys.extend(st.legacy.keys());
            keys.sort_unstable();
            keys.dedup();
        }
        Ok(keys)
    }

    fn usage(&self) -> Usage {
        let mut st = self.shared.lock();
        let used = used_bytes(&st);
        let shard_count = st.index.totals().1 + st.legacy.len() as u64;
        let capacity_bytes = match self.shared.capacity {
            Some(cap) => cap,
            None => used + st.space.free().saturating_sub(2 * self.shared.cfg.segment_bytes),
        };
        Usage { used_bytes: used, capacity_bytes, shard_count }
    }

    fn backend(&self) -> Backend {
        Backend { name: "segment", direct_io: self.is_direct() }
    }

    fn modified(&self, key: &ShardKey) -> Option<SystemTime> {
        let st = self.shared.lock();
        if let Some(rec) = st.index.get(key) {
            return Some(UNIX_EPOCH + Duration::from_nanos(rec.mtime_ns));
        }
        st.legacy.get(key).map(|f| f.mtime)
    }
}

impl Drop for SegmentStore {
    fn drop(&mut self) {
        self.shared.compactor.stop();
        if let Some(t) = self.compactor_thread.take() {
            if t.join().is_err() {
                tracing::error!("the segment compactor panicked");
            }
        }
        drop(self.writer.take());
        if let Some(t) = self.writer_thread.take() {
            if t.join().is_err() {
                tracing::error!("the segment writer panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests;
