//! [`UringStore`] tests: the conformance suite (with `O_DIRECT` and
//! buffered), the version-2 layout, reading `FileStore` shards and back,
//! damage on disk, and concurrent 1 MiB shards.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use shardline_types::placement::mix64;
use shardline_types::ShardKey;

use super::*;
use crate::conformance::{conformance_tests, files_under, flip_byte_at, key, payload, tear_file, Harness, Tear};
use crate::FileStore;

struct UringHarness;

impl Harness for UringHarness {
    const NAME: &'static str = "io_uring O_DIRECT";
    type Store = UringStore;
    fn open(dir: &Path, capacity_bytes: Option<u64>) -> UringStore {
        UringStore::open(dir, capacity_bytes).unwrap()
    }
    fn flip_payload_byte(dir: &Path, key: &ShardKey) {
        flip_byte_at(&shard_file(dir, key), BLOCK_LEN_V2 as u64 + 5);
    }
    fn tear_last_write(dir: &Path, key: &ShardKey, tear: Tear) {
        let path = shard_file(dir, key);
        let len = fs::metadata(&path).unwrap().len() - BLOCK_LEN_V2 as u64;
        tear_file(&path, BLOCK_LEN_V2 as u64, len, tear);
    }
    fn unavailable() -> Option<String> {
        unavailable()
    }
}

conformance_tests!(UringHarness);

/// The same suite through the ring with buffered I/O, the path taken when
/// the file system refuses `O_DIRECT`.
mod buffered {
    use super::*;

    struct BufferedHarness;

    impl Harness for BufferedHarness {
        const NAME: &'static str = "io_uring buffered";
        type Store = UringStore;
        fn open(dir: &Path, capacity_bytes: Option<u64>) -> UringStore {
            let store = UringStore::open_with(dir, capacity_bytes, false).unwrap();
            assert!(!store.is_direct());
            store
        }
        fn flip_payload_byte(dir: &Path, key: &ShardKey) {
            UringHarness::flip_payload_byte(dir, key)
        }
        fn tear_last_write(dir: &Path, key: &ShardKey, tear: Tear) {
            UringHarness::tear_last_write(dir, key, tear)
        }
        fn unavailable() -> Option<String> {
            super::unavailable()
        }
    }

    conformance_tests!(BufferedHarness);
}

fn unavailable() -> Option<String> {
    uring_available().err().map(|e| e.chain())
}

/// Open a store under `dir`, or `None` (with a notice) without io_uring.
fn open(dir: &Path, capacity: Option<u64>) -> Option<UringStore> {
    if let Some(why) = unavailable() {
        crate::conformance::skip_or_fail("io_uring", "store test", &why, crate::conformance::io_uring_required());
        return None;
    }
    Some(UringStore::open(dir, capacity).unwrap())
}

fn shard_file(dir: &Path, key: &ShardKey) -> std::path::PathBuf {
    FileStore::open(dir, None).unwrap().shard_path(key).1
}

/// Bytes that differ at every 8-byte word between shards and offsets, so a
/// block read from the wrong place or shard cannot pass.
fn distinct_bytes(seed: u64, len: usize) -> Vec<u8> {
    (0..len.div_ceil(8)).flat_map(|w| mix64(seed << 32 ^ w as u64).to_le_bytes()).take(len).collect()
}

#[test]
fn writes_aligned_version_2_files_in_the_shared_layout() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = open(dir.path(), None) else { return };
    let (data, crc) = payload(1, 100);
    s.put(&key(1, 0), &data, crc).unwrap();
    let files = files_under(dir.path());
    assert_eq!(files, vec![shard_file(dir.path(), &key(1, 0))]);
    let bytes = fs::read(&files[0]).unwrap();
    assert_eq!(bytes.len(), 2 * BLOCK_LEN_V2);
    assert_eq!(&bytes[..4], b"SLSH");
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 2);
    assert!(bytes[HEADER_LEN_V1..BLOCK_LEN_V2].iter().all(|&b| b == 0));
    assert_eq!(&bytes[BLOCK_LEN_V2..BLOCK_LEN_V2 + 100], &data[..]);
    assert!(bytes[BLOCK_LEN_V2 + 100..].iter().all(|&b| b == 0));
    assert_eq!(s.usage().used_bytes, 2 * BLOCK_LEN_V2 as u64);
}

#[test]
fn reads_file_store_shards_and_file_store_reads_its_shards() {
    let dir = tempfile::tempdir().unwrap();
    let Some(uring) = open(dir.path(), None) else { return };
    let file = FileStore::open(dir.path(), None).unwrap();
    let lens = [0usize, 1, 4096, 5000, 1 << 20];
    for (i, len) in lens.into_iter().enumerate() {
        let (data, crc) = payload(i as u8, len);
        file.put(&key(1, i as u32), &data, crc).unwrap();
        uring.put(&key(2, i as u32), &data, crc).unwrap();
    }
    for (i, len) in lens.into_iter().enumerate() {
        let want = payload(i as u8, len);
        assert_eq!(uring.get(&key(1, i as u32)).unwrap(), want, "version 1, length {len}");
        assert_eq!(file.get(&key(2, i as u32)).unwrap(), want, "version 2, length {len}");
    }
    drop((uring, file));
    let reopened = UringStore::open(dir.path(), None).unwrap();
    assert_eq!(reopened.usage().shard_count, 10);
    assert_eq!(reopened.list().unwrap().len(), 10);
}

#[test]
fn damaged_shards_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = open(dir.path(), None) else { return };
    let (data, crc) = payload(1, 500);
    for i in 0..5 {
        s.put(&key(1, i), &data, crc).unwrap();
    }
    // A header bit.
    flip_byte_at(&s.shard_path(&key(1, 0)).1, 10);
    // A file cut inside its padding: the length no longer matches.
    let f = OpenOptions::new().write(true).open(s.shard_path(&key(1, 1)).1).unwrap();
    f.set_len(2 * BLOCK_LEN_V2 as u64 - 1).unwrap();
    // A file shorter than a header.
    fs::write(s.shard_path(&key(1, 2)).1, b"SLSH").unwrap();
    // A padding byte: not covered by a checksum, and harmless.
    flip_byte_at(&s.shard_path(&key(1, 3)).1, BLOCK_LEN_V2 as u64 + 600);
    // A valid shard copied to another key.
    fs::copy(s.shard_path(&key(1, 4)).1, s.shard_path(&key(1, 9)).1).unwrap();
    for i in 0..3 {
        assert!(matches!(s.get(&key(1, i)), Err(DataError::Corrupt(_))), "shard {i}");
    }
    assert_eq!(s.get(&key(1, 3)).unwrap(), (data.clone(), crc));
    assert!(matches!(s.get(&key(1, 9)), Err(DataError::Corrupt(m)) if m.contains("different shard")));
    assert_eq!(s.get(&key(1, 4)).unwrap(), (data, crc));
}

#[test]
fn no_space_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = open(dir.path(), Some(5000)) else { return };
    let (data, crc) = payload(1, 2000);
    assert!(matches!(s.put(&key(1, 0), &data, crc), Err(DataError::NoSpace { .. })));
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(s.usage().used_bytes, 0);
}

#[test]
fn sixty_four_1_mib_shards_from_8_threads_read_back_exactly() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 8;
    const LEN: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let Some(s) = open(dir.path(), None) else { return };
    if !s.is_direct() {
        eprintln!("note: the file system refused O_DIRECT; testing buffered I/O");
    }
    let s = Arc::new(s);
    let shard = |n: u64| (ShardKey { file_id: n, chunk_index: n / 6, version: 1, shard_index: (n % 6) as u32 }, n);
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for n in t * PER_THREAD..(t + 1) * PER_THREAD {
                    let (k, seed) = shard(n);
                    let data = distinct_bytes(seed, LEN);
                    s.put(&k, &data, crc32c::crc32c(&data)).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let total = THREADS * PER_THREAD;
    let u = s.usage();
    assert_eq!((u.shard_count, u.used_bytes), (total, total * (BLOCK_LEN_V2 + LEN) as u64));
    // Each reader checks every shard, starting at a different one.
    let readers: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..total {
                    let (k, seed) = shard((i + t * PER_THREAD) % total);
                    let (got, crc) = s.get(&k).unwrap();
                    let want = distinct_bytes(seed, LEN);
                    assert!(got == want, "shard {seed} read back different bytes");
                    assert_eq!(crc, crc32c::crc32c(&want));
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(s.list().unwrap().len() as u64, total);
}

#[test]
fn stores_open_and_close_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    if open(dir.path(), None).is_none() {
        return;
    }
    let (data, crc) = payload(3, 10_000);
    for i in 0..20 {
        let s = UringStore::open(dir.path(), None).unwrap();
        s.put(&key(1, i), &data, crc).unwrap();
        assert_eq!(s.get(&key(1, i)).unwrap(), (data.clone(), crc));
    }
    assert_eq!(UringStore::open(dir.path(), None).unwrap().usage().shard_count, 20);
}
