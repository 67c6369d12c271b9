//! [`SegmentStore`] tests: the conformance suite (page cache and
//! `O_DIRECT`), group commit, ranged reads, free-space caching. Recovery,
//! compaction and migration have files of their own.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use shardline_types::ShardKey;

use super::*;
use crate::conformance::{conformance_tests, flip_byte_at, key, payload, tear_file, Harness, Tear};

#[path = "tests_compaction.rs"]
mod compaction;
#[path = "tests_migration.rs"]
mod migration;
#[path = "tests_recovery.rs"]
mod recovery;

/// Small segments, so tests cross segment boundaries; no background
/// compaction unless woken (tests that damage files want them to stay put).
pub(super) fn small(direct_io: bool) -> SegmentConfig {
    SegmentConfig {
        segment_bytes: 512 << 10,
        direct_io,
        compact_every: Duration::from_secs(3600),
        ..Default::default()
    }
}

pub(super) fn open(dir: &Path) -> SegmentStore {
    SegmentStore::open_with(dir, None, small(false), Arc::new(OsIo)).unwrap()
}

/// Where `key`'s payload lies on disk.
pub(super) fn stored(dir: &Path, key: &ShardKey) -> inspect::StoredShard {
    inspect::stored_shards(dir).unwrap().into_iter().find(|s| s.key == *key).expect("shard on disk")
}

struct SegmentHarness;

impl Harness for SegmentHarness {
    const NAME: &'static str = "segment (buffered)";
    type Store = SegmentStore;
    fn open(dir: &Path, capacity_bytes: Option<u64>) -> SegmentStore {
        SegmentStore::open_with(dir, capacity_bytes, small(false), Arc::new(OsIo)).unwrap()
    }
    fn flip_payload_byte(dir: &Path, key: &ShardKey) {
        let s = stored(dir, key);
        flip_byte_at(&s.path, s.payload_offset + 5);
    }
    fn tear_last_write(dir: &Path, key: &ShardKey, tear: Tear) {
        let s = stored(dir, key);
        tear_file(&s.path, s.payload_offset, s.payload_len, tear);
    }
    fn open_faulty(dir: &Path, io: Arc<FaultyIo>) -> Option<SegmentStore> {
        Some(SegmentStore::open_with(dir, None, small(false), io).unwrap())
    }
}

conformance_tests!(SegmentHarness);

/// The same suite with segments written with `O_DIRECT`.
mod direct {
    use super::*;

    struct DirectHarness;

    impl Harness for DirectHarness {
        const NAME: &'static str = "segment O_DIRECT";
        type Store = SegmentStore;
        fn open(dir: &Path, capacity_bytes: Option<u64>) -> SegmentStore {
            SegmentStore::open_with(dir, capacity_bytes, small(true), Arc::new(OsIo)).unwrap()
        }
        fn flip_payload_byte(dir: &Path, key: &ShardKey) {
            SegmentHarness::flip_payload_byte(dir, key)
        }
        fn tear_last_write(dir: &Path, key: &ShardKey, tear: Tear) {
            SegmentHarness::tear_last_write(dir, key, tear)
        }
        fn open_faulty(dir: &Path, io: Arc<FaultyIo>) -> Option<SegmentStore> {
            Some(SegmentStore::open_with(dir, None, small(true), io).unwrap())
        }
    }

    conformance_tests!(DirectHarness);
}

/// A seam whose next sync, once armed, waits until released; counts syncs.
#[derive(Default)]
pub(super) struct GatedIo {
    /// (armed, inside the gated sync, released)
    gate: Mutex<(bool, bool, bool)>,
    cv: Condvar,
    syncs: std::sync::atomic::AtomicU32,
}

impl GatedIo {
    pub(super) fn arm(&self) {
        *self.gate.lock().unwrap() = (true, false, false);
    }
    pub(super) fn wait_entered(&self) {
        let g = self.gate.lock().unwrap();
        drop(self.cv.wait_while(g, |g| !g.1).unwrap());
    }
    pub(super) fn release(&self) {
        self.gate.lock().unwrap().2 = true;
        self.cv.notify_all();
    }
    pub(super) fn syncs(&self) -> u32 {
        self.syncs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SegmentIo for GatedIo {
    fn write_at(&self, file: &std::fs::File, bufs: &[&[u8]], offset: u64) -> std::io::Result<()> {
        OsIo.write_at(file, bufs, offset)
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        {
            let mut g = self.gate.lock().unwrap();
            if g.0 {
                g.0 = false;
                g.1 = true;
                self.cv.notify_all();
                drop(self.cv.wait_while(g, |g| !g.2).unwrap());
            }
        }
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OsIo.sync_data(file)
    }
}

/// Wait (polling, with a deadline) until `n` requests queue for the writer.
pub(super) fn wait_queued(s: &SegmentStore, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.client().unwrap().queued() < n {
        assert!(Instant::now() < deadline, "requests never queued for the writer");
        std::thread::yield_now();
    }
}

#[test]
fn puts_that_arrive_during_a_sync_share_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(GatedIo::default());
    let s = Arc::new(SegmentStore::open_with(dir.path(), None, small(false), io.clone()).unwrap());
    io.arm();
    let put = |n: u32| {
        let s = s.clone();
        std::thread::spawn(move || {
            let (data, crc) = payload(n as u8, 1000 + n as usize);
            s.put(&key(7, n), &data, crc).unwrap();
        })
    };
    let first = put(0);
    io.wait_entered();
    let before = io.syncs();
    let rest: Vec<_> = (1..=6).map(put).collect();
    wait_queued(&s, 6);
    io.release();
    first.join().unwrap();
    for t in rest {
        t.join().unwrap();
    }
    assert_eq!(io.syncs() - before, 2, "one sync for the first put, one for the six that queued behind it");
    for n in 0..=6 {
        let (data, crc) = payload(n as u8, 1000 + n as usize);
        assert_eq!(s.get(&key(7, n)).unwrap(), (data, crc));
    }
}

/// Bytes that differ at every 8-byte word, so a block read from the wrong
/// place cannot pass.
fn distinct(len: usize) -> Vec<u8> {
    (0..len.div_ceil(8)).flat_map(|w| shardline_types::placement::mix64(w as u64).to_le_bytes()).take(len).collect()
}

#[test]
fn get_range_reads_and_checks_only_the_blocks_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let data = distinct(1 << 20);
    let k = key(1, 0);
    s.put(&k, &data, crc32c::crc32c(&data)).unwrap();
    // Later writes, so that the damage below is not a torn tail.
    s.put(&key(1, 1), b"after", crc32c::crc32c(b"after")).unwrap();
    let len = data.len() as u64;
    for (off, n) in [(0u64, 1u64), (65_535, 2), (100_000, 128 << 10), (len - 10, 0), (0, 0), (len, 5), (5, len)] {
        let (got, shard_len) = s.get_range(&k, off, n).unwrap();
        let end = if n == 0 { len } else { (off + n).min(len) };
        assert_eq!(shard_len, len);
        assert!(got == data[off as usize..end as usize], "range {off}+{n}");
    }
    assert!(matches!(s.get_range(&k, len + 1, 1), Err(DataError::InvalidArgument(_))));
    assert!(matches!(s.get_range(&key(9, 9), 0, 1), Err(DataError::NotFound)));
    // Rot in block 10: ranges elsewhere still read, ranges touching it fail.
    let at = stored(dir.path(), &k);
    flip_byte_at(&at.path, at.payload_offset + 10 * 65_536 + 7);
    assert!(s.get_range(&k, 0, 2 * 65_536).unwrap().0 == data[..2 * 65_536]);
    assert!(s.get_range(&k, 11 * 65_536, 1000).unwrap().0 == data[11 * 65_536..11 * 65_536 + 1000]);
    assert!(matches!(s.get_range(&k, 10 * 65_536 + 100, 10), Err(DataError::Corrupt(_))));
    assert!(matches!(s.get_range(&k, 9 * 65_536, 2 * 65_536), Err(DataError::Corrupt(_))));
    assert!(matches!(s.get(&k), Err(DataError::Corrupt(_))));
}

#[test]
fn free_space_is_asked_of_the_kernel_at_most_about_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let start = Instant::now();
    let queries = || s.shared.lock().space.queries;
    let before = queries();
    let (data, crc) = payload(1, 4000);
    for i in 0..100 {
        s.put(&key(1, i), &data, crc).unwrap();
        let _ = s.usage();
    }
    let asked = queries() - before;
    let allowed = start.elapsed().as_secs() + 2;
    assert!(asked <= allowed, "asked {asked} times in {:?} for 100 puts and 100 usage reports", start.elapsed());
}

#[test]
fn reports_its_backend_and_io_mode() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert_eq!(s.backend(), Backend { name: "segment", direct_io: false });
    let d = tempfile::tempdir().unwrap();
    let s = SegmentStore::open_with(d.path(), None, small(true), Arc::new(OsIo)).unwrap();
    // O_DIRECT unless the file system under the temporary folder refuses it.
    assert_eq!(s.backend().direct_io, s.is_direct());
}

#[test]
fn a_second_failed_sync_stops_writes_until_the_store_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::default());
    let s = SegmentStore::open_with(dir.path(), None, small(false), io.clone()).unwrap();
    let (a, a_crc) = payload(1, 5000);
    s.put(&key(1, 0), &a, a_crc).unwrap();
    // The batch's sync fails, and so does the sync that would remove it.
    io.fail_next_syncs(2);
    assert!(s.put(&key(1, 1), &a, a_crc).is_err());
    let err = s.put(&key(1, 2), &a, a_crc).expect_err("writes must stop");
    assert!(err.chain().contains("could not be removed"), "{}", err.chain());
    assert_eq!(s.get(&key(1, 0)).unwrap(), (a.clone(), a_crc), "reads go on");
    drop(s);
    let s = open(dir.path());
    assert!(matches!(s.get(&key(1, 1)), Err(DataError::NotFound)));
    s.put(&key(1, 2), &a, a_crc).unwrap();
    assert_eq!(s.list().unwrap(), vec![key(1, 0), key(1, 2)]);
}
