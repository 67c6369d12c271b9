//! Start-up recovery: damage in the middle of a segment, torn tails inside
//! one group commit, an unfinished new segment.

use std::fs::{self, OpenOptions};
use std::sync::Arc;

use super::*;
use crate::conformance::{flip_byte_at, key, payload};

/// Offset of `key`'s record (its header) in its segment.
fn record_offset(dir: &Path, key: &ShardKey) -> (std::path::PathBuf, u64) {
    let s = stored(dir, key);
    let blocks = s.payload_len.div_ceil(65_536);
    (s.path, s.payload_offset - 80 - 4 * blocks)
}

#[test]
fn a_damaged_record_header_mid_segment_loses_that_shard_only_and_keeps_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<_> = (0..10u32).map(|i| (key(1, i), payload(i as u8, 3000 + 1000 * i as usize))).collect();
    {
        let s = open(dir.path());
        for (k, (data, crc)) in &shards {
            s.put(k, data, *crc).unwrap();
        }
    }
    let (path, at) = record_offset(dir.path(), &key(1, 3));
    let len_before = fs::metadata(&path).unwrap().len();
    flip_byte_at(&path, at + 30); // inside the key fields: the header checksum fails
    let s = open(dir.path());
    assert!(matches!(s.get(&key(1, 3)), Err(DataError::NotFound)), "its header is unreadable");
    for (k, (data, crc)) in shards.iter().filter(|(k, _)| *k != key(1, 3)) {
        assert_eq!(s.get(k).unwrap(), (data.clone(), *crc), "shard {}", k.shard_index);
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), len_before, "damage mid-log is not a torn tail: nothing is cut");
    let (data, crc) = payload(99, 777);
    s.put(&key(2, 0), &data, crc).unwrap();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.get(&key(2, 0)).unwrap(), (data, crc));
    assert_eq!(s.list().unwrap().len(), 10);
}

#[test]
fn a_torn_group_commit_keeps_its_verified_records_and_cuts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(GatedIo::default());
    let first = payload(1, 2000);
    let batch: Vec<_> = (1..=3u32).map(|i| (key(2, i), payload(i as u8 + 10, 100_000))).collect();
    {
        let s = Arc::new(SegmentStore::open_with(dir.path(), None, small(false), io.clone()).unwrap());
        s.put(&key(1, 0), &first.0, first.1).unwrap();
        // Hold the writer in a sync so that the next three puts form one batch.
        io.arm();
        let blocker = {
            let s = s.clone();
            std::thread::spawn(move || s.put(&key(1, 1), b"x", crc32c::crc32c(b"x")).unwrap())
        };
        io.wait_entered();
        let puts: Vec<_> = batch
            .iter()
            .cloned()
            .map(|(k, (data, crc))| {
                let s = s.clone();
                std::thread::spawn(move || s.put(&k, &data, crc).unwrap())
            })
            .collect();
        wait_queued(&s, 3);
        io.release();
        blocker.join().unwrap();
        for p in puts {
            p.join().unwrap();
        }
    }
    // Within the last batch, which is the middle record?
    let mut in_batch: Vec<_> = batch.iter().map(|(k, _)| (stored(dir.path(), k), *k)).collect();
    in_batch.sort_by_key(|(s, _)| s.payload_offset);
    let (middle, middle_key) = &in_batch[1];
    // A page of the middle record's payload never reached the disk.
    let f = OpenOptions::new().write(true).open(&middle.path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 4096], (middle.payload_offset + 50_000).next_multiple_of(4096))
        .unwrap();
    drop(f);
    let s = open(dir.path());
    let (first_key, last_key) = (in_batch[0].1, in_batch[2].1);
    let want = |k: &ShardKey| batch.iter().find(|(b, _)| b == k).unwrap().1.clone();
    assert_eq!(s.get(&first_key).unwrap(), want(&first_key), "the batch's first record verified and is kept");
    assert!(matches!(s.get(middle_key), Err(DataError::NotFound)), "the torn record is cut away");
    assert!(matches!(s.get(&last_key), Err(DataError::NotFound)), "what follows it in the torn batch goes too");
    assert_eq!(s.get(&key(1, 0)).unwrap(), first, "earlier batches are untouched");
    let record_start = middle.payload_offset - 80 - 4 * middle.payload_len.div_ceil(65_536);
    assert_eq!(fs::metadata(&middle.path).unwrap().len(), record_start.next_multiple_of(4096), "cut on disk");
    // Appends continue after the cut and survive a restart.
    let (data, crc) = payload(50, 123_456);
    s.put(&key(3, 0), &data, crc).unwrap();
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.get(&key(3, 0)).unwrap(), (data, crc));
    assert_eq!(s.get(&first_key).unwrap(), want(&first_key));
}

#[test]
fn an_unfinished_new_segment_is_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (data, crc) = payload(1, 5000);
    {
        let s = open(dir.path());
        s.put(&key(1, 0), &data, crc).unwrap();
    }
    // A crash while creating the next segment: its header half written.
    let segdir = dir.path().join("segments");
    let unfinished = segdir.join(format::segment_file_name(99));
    fs::write(&unfinished, b"SLSEGMNT\x01\x00garbage").unwrap();
    let s = open(dir.path());
    assert!(!unfinished.exists());
    assert_eq!(s.get(&key(1, 0)).unwrap(), (data.clone(), crc));
    s.put(&key(1, 1), &data, crc).unwrap();
    drop(s);
    assert_eq!(open(dir.path()).list().unwrap(), vec![key(1, 0), key(1, 1)]);
}

#[test]
fn a_damaged_older_segment_header_costs_only_that_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (data, crc) = payload(1, 300_000);
    {
        let s = open(dir.path());
        // 512 KiB segments: each of these fills one.
        for i in 0..3 {
            s.put(&key(1, i), &data, crc).unwrap();
        }
    }
    let victim = stored(dir.path(), &key(1, 0)).path;
    flip_byte_at(&victim, 20);
    let s = open(dir.path());
    assert!(matches!(s.get(&key(1, 0)), Err(DataError::NotFound)));
    assert_eq!(s.get(&key(1, 1)).unwrap(), (data.clone(), crc));
    assert_eq!(s.get(&key(1, 2)).unwrap(), (data.clone(), crc));
    assert!(victim.exists(), "a damaged segment is left for a human to look at");
    s.put(&key(1, 3), &data, crc).unwrap();
    assert_eq!(s.list().unwrap(), vec![key(1, 1), key(1, 2), key(1, 3)]);
}
