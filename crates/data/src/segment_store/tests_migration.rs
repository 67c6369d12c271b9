//! Data folders of the per-file stores (shard format versions 1 and 2)
//! opened by the segment store: migrated, crash-safely and idempotently.

use std::fs;

use super::*;
use crate::conformance::{files_under, flip_byte_at, key, payload};
use crate::shard_format::HEADER_LEN_V1;
use crate::{FileStore, UringStore};

const LENS: [usize; 5] = [0, 1, 4096, 5000, 1 << 20];

/// Write shards with the per-file stores: version 1 under file id 1,
/// version 2 (if io_uring is here) under file id 2; returns what was written.
fn write_old_folder(dir: &Path) -> BTreeMap<ShardKey, ((Vec<u8>, u32), SystemTime)> {
    let mut written = BTreeMap::new();
    let file = FileStore::open(dir, None).unwrap();
    let uring = UringStore::open(dir, None).ok();
    if uring.is_none() {
        eprintln!("note: io_uring unavailable; migrating version-1 files only");
    }
    for (i, len) in LENS.into_iter().enumerate() {
        let shard = payload(i as u8, len);
        file.put(&key(1, i as u32), &shard.0, shard.1).unwrap();
        let mtime = file.modified(&key(1, i as u32)).unwrap();
        written.insert(key(1, i as u32), (shard.clone(), mtime));
        if let Some(u) = &uring {
            u.put(&key(2, i as u32), &shard.0, shard.1).unwrap();
            written.insert(key(2, i as u32), (shard, u.modified(&key(2, i as u32)).unwrap()));
        }
    }
    written
}

use std::collections::BTreeMap;
use std::time::SystemTime;

#[test]
fn shard_files_of_the_per_file_stores_are_migrated_into_segments() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_old_folder(dir.path());
    // One version-1 file rotten on disk: it cannot be migrated.
    let rotten = key(1, 3);
    let rotten_path = FileStore::open(dir.path(), None).unwrap().shard_path(&rotten).1;
    flip_byte_at(&rotten_path, HEADER_LEN_V1 as u64 + 7);

    let s = open(dir.path());
    for (k, (shard, mtime)) in written.iter().filter(|(k, _)| **k != rotten) {
        assert_eq!(&s.get(k).unwrap(), shard, "{k:?}");
        assert_eq!(s.modified(k), Some(*mtime), "{k:?} keeps its age (garbage collection's grace)");
    }
    assert_eq!(s.list().unwrap(), written.keys().copied().collect::<Vec<_>>(), "the rotten file is listed");
    assert!(matches!(s.get(&rotten), Err(DataError::Corrupt(_))), "scrub sees it as corrupt");
    assert_eq!(s.usage().shard_count, written.len() as u64);
    let left: Vec<_> = files_under(&dir.path().join("shards"));
    assert_eq!(left, vec![rotten_path.clone()], "migrated files are gone, the rotten one stays");
    // Scrub's repair: a put over the rotten shard replaces it.
    let (data, crc) = &written[&rotten].0;
    s.put(&rotten, data, *crc).unwrap();
    assert!(!rotten_path.exists());
    assert_eq!(&s.get(&rotten).unwrap(), &written[&rotten].0);
    drop(s);
    let s = open(dir.path());
    assert!(!dir.path().join("shards").exists(), "the emptied legacy folder is removed");
    for (k, (shard, _)) in &written {
        assert_eq!(&s.get(k).unwrap(), shard, "{k:?} after a second start");
    }
}

#[test]
fn a_crash_during_migration_migrates_again_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_old_folder(dir.path());
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> =
        files_under(&dir.path().join("shards")).into_iter().map(|p| (p.clone(), fs::read(&p).unwrap())).collect();
    drop(open(dir.path()));
    // As if the crash came after the records were durable but before the
    // files' removal was.
    for (path, bytes) in &saved {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    let s = open(dir.path());
    assert_eq!(s.list().unwrap(), written.keys().copied().collect::<Vec<_>>());
    assert_eq!(s.usage().shard_count, written.len() as u64);
    for (k, (shard, _)) in &written {
        assert_eq!(&s.get(k).unwrap(), shard, "{k:?}");
    }
    // Anything the segment store writes later wins over a migrated record.
    let (data, crc) = payload(99, 10);
    s.put(&key(1, 1), &data, crc).unwrap();
    s.delete(&key(1, 2)).unwrap();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.get(&key(1, 1)).unwrap(), (data, crc));
    assert!(matches!(s.get(&key(1, 2)), Err(DataError::NotFound)));
}

#[test]
fn the_per_file_stores_refuse_a_folder_of_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (data, crc) = payload(1, 100);
    open(dir.path()).put(&key(1, 0), &data, crc).unwrap();
    let err = FileStore::open(dir.path(), None).err().expect("the file store must not open a segment folder");
    assert!(matches!(err, DataError::Config(ref m) if m.contains("segment")), "{err}");
}
