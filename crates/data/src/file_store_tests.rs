//! [`FileStore`] tests: the conformance suite plus file-specific cases.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use shardline_types::ShardKey;

use super::*;
use crate::conformance::{conformance_tests, files_under, flip_byte_at, key, payload, tear_file, Harness, Tear};
use crate::shard_format::HEADER_LEN_V1;

struct FileHarness;

impl Harness for FileHarness {
    const NAME: &'static str = "file (pread/pwrite)";
    type Store = FileStore;
    fn open(dir: &Path, capacity_bytes: Option<u64>) -> FileStore {
        FileStore::open(dir, capacity_bytes).unwrap()
    }
    fn flip_payload_byte(dir: &Path, key: &ShardKey) {
        let path = FileStore::open(dir, None).unwrap().shard_path(key).1;
        flip_byte_at(&path, HEADER_LEN_V1 as u64 + 5);
    }
    fn tear_last_write(dir: &Path, key: &ShardKey, tear: Tear) {
        let path = FileStore::open(dir, None).unwrap().shard_path(key).1;
        let len = fs::metadata(&path).unwrap().len() - HEADER_LEN_V1 as u64;
        tear_file(&path, HEADER_LEN_V1 as u64, len, tear);
    }
}

conformance_tests!(FileHarness);

fn tmp_files(dir: &Path) -> usize {
    files_under(dir).iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).count()
}

#[test]
fn layout_is_shards_hash_dir_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), None).unwrap();
    let (data, crc) = payload(1, 100);
    s.put(&key(1, 0), &data, crc).unwrap();
    let files = files_under(dir.path());
    assert_eq!(files.len(), 1);
    let rel = files[0].strip_prefix(dir.path()).unwrap();
    let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    assert_eq!(parts[0], "shards");
    assert_eq!(parts[1].len(), 2);
    assert_eq!(parts[2], key(1, 0).file_name());
    assert_eq!(fs::metadata(&files[0]).unwrap().len(), HEADER_LEN_V1 as u64 + 100);
    assert_eq!(&fs::read(&files[0]).unwrap()[..4], b"SLSH");
}

#[test]
fn stale_temporary_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), None).unwrap();
    let (data, crc) = payload(1, 100);
    s.put(&key(1, 0), &data, crc).unwrap();
    let (sub, _) = s.shard_path(&key(1, 1));
    fs::write(sub.join(format!("{}.3.tmp", key(1, 1).file_name())), b"half a shard").unwrap();
    drop(s);
    assert_eq!(tmp_files(dir.path()), 1);
    let s = FileStore::open(dir.path(), None).unwrap();
    assert_eq!(tmp_files(dir.path()), 0);
    assert_eq!(s.list().unwrap(), vec![key(1, 0)]);
    assert_eq!(s.usage().shard_count, 1);
}

#[test]
fn no_space_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), Some(1000)).unwrap();
    let (data, crc) = payload(1, 2000);
    assert!(matches!(s.put(&key(1, 0), &data, crc), Err(DataError::NoSpace { .. })));
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(s.usage().used_bytes, 0);
}

#[test]
fn damaged_header_or_length_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), None).unwrap();
    let (data, crc) = payload(1, 500);
    for i in 0..4 {
        s.put(&key(1, i), &data, crc).unwrap();
    }
    // A header bit.
    flip_byte_at(&s.shard_path(&key(1, 0)).1, 10);
    // A truncated payload.
    let f = OpenOptions::new().write(true).open(s.shard_path(&key(1, 1)).1).unwrap();
    f.set_len(HEADER_LEN_V1 as u64 + 499).unwrap();
    // A file shorter than a header.
    fs::write(s.shard_path(&key(1, 2)).1, b"SLSH").unwrap();
    // A valid shard renamed to another key.
    let (from, to) = (s.shard_path(&key(1, 3)).1, s.shard_path(&key(1, 4)));
    fs::copy(&from, &to.1).unwrap();
    for i in 0..3 {
        assert!(matches!(s.get(&key(1, i)), Err(DataError::Corrupt(_))), "shard {i}");
    }
    assert!(matches!(s.get(&key(1, 4)), Err(DataError::Corrupt(m)) if m.contains("different shard")));
    assert_eq!(s.get(&key(1, 3)).unwrap(), (data, crc));
}

#[test]
fn concurrent_puts_never_overrun_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let per_shard = HEADER_LEN_V1 as u64 + 1000;
    let s = Arc::new(FileStore::open(dir.path(), Some(per_shard * 10)).unwrap());
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let (data, crc) = payload(t as u8, 1000);
                (0..5).filter(|i| s.put(&key(t, *i), &data, crc).is_ok()).count()
            })
        })
        .collect();
    let stored: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(stored, 10);
    let u = s.usage();
    assert_eq!((u.shard_count, u.used_bytes), (10, per_shard * 10));
    assert_eq!(tmp_files(dir.path()), 0);
    drop(s);
    let u = FileStore::open(dir.path(), None).unwrap().usage();
    assert_eq!((u.shard_count, u.used_bytes), (10, per_shard * 10));
}
